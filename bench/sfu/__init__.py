"""Side-by-side SFU benchmark (relayroom against Janus): the parts `bench/sfu_compare.py` uses."""
