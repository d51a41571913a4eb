"""The layer choice of one subscriber: asked size or quality, REMB with hysteresis."""

from __future__ import annotations

import itertools

from relayroom.media.layers import Layer, LayerChooser, LayerPolicy, LayerRequest, rank

POLICY = LayerPolicy(upgrade_headroom=1.25, upgrade_hold_s=2.0, grace_s=5.0)


def layers() -> list[Layer]:
    out = []
    for i, (rid, size, rate) in enumerate(
        (
            ("f", (1280, 720), 1_500_000),
            ("q", (320, 180), 150_000),
            ("h", (640, 360), 500_000),
        )
    ):
        layer = Layer(rid, i)
        layer.width, layer.height = size
        layer.last_bitrate_bps = rate
        out.append(layer)
    return rank(out)


def test_ranking_goes_by_resolution_not_offer_order() -> None:
    assert [x.rid for x in layers()] == ["q", "h", "f"]


def test_without_estimate_the_request_decides() -> None:
    ranked = layers()
    chooser = LayerChooser(POLICY)
    assert chooser.choose(ranked, None, 0).rid == "f"  # type: ignore[union-attr]
    chooser.request = LayerRequest(max_width=160, max_height=90)
    assert chooser.choose(ranked, ranked[2], 0).rid == "q"  # type: ignore[union-attr]
    chooser.request = LayerRequest(paused=True)
    assert chooser.choose(ranked, ranked[0], 0) is None


def test_a_healthy_receiver_climbs_one_layer_at_a_time() -> None:
    ranked = layers()
    chooser = LayerChooser(POLICY)
    now = 100.0
    chooser.set_estimate(230_000, now)  # receiving q with headroom
    current = chooser.choose(ranked, ranked[0], now)
    assert current is ranked[1]  # probe h
    # REMB grows about 8% a second on a link that carries it: no step down meanwhile.
    estimate = 230_000.0
    for _ in range(12):
        now += 1
        estimate *= 1.08
        chooser.set_estimate(int(estimate), now)
        current = chooser.choose(ranked, current, now)
        assert current is not ranked[0]
    assert current is ranked[1] or current is ranked[2]


def test_a_capped_receiver_falls_back_and_probes_less_and_less_often() -> None:
    ranked = layers()
    chooser = LayerChooser(POLICY)
    now = 100.0
    current: Layer | None = ranked[0]
    ups: list[float] = []
    for _ in range(120):  # a minute at 0.5 s
        now += 0.5
        chooser.set_estimate(230_000, now)  # a fixed cap: h never fits
        new = chooser.choose(ranked, current, now)
        if new is ranked[1] and current is ranked[0]:
            ups.append(now)
        current = new
    gaps = [b - a for a, b in itertools.pairwise(ups)]
    assert len(ups) >= 2 and gaps == sorted(gaps) and gaps[-1] > gaps[0]
    assert current is not ranked[2]


def test_over_use_steps_down_at_once() -> None:
    ranked = layers()
    chooser = LayerChooser(POLICY)
    chooser.set_estimate(2_000_000, 10.0)
    assert chooser.choose(ranked, ranked[2], 10.0) is ranked[2]
    chooser.set_estimate(600_000, 10.5)  # fell by far more than 15%
    assert chooser.choose(ranked, ranked[2], 10.5) is ranked[1]


def test_a_tile_that_grows_gets_its_layer_at_once_unless_a_step_down_is_on_hold() -> None:
    ranked = layers()
    chooser = LayerChooser(POLICY)
    chooser.ask(LayerRequest(max_width=320, max_height=180))
    chooser.set_estimate(230_000, 10.0)  # what a receiver of q estimates
    assert chooser.choose(ranked, ranked[0], 10.0) is ranked[0]
    chooser.ask(LayerRequest(max_width=1280, max_height=720))
    assert chooser.choose(ranked, ranked[0], 10.5) is ranked[2]  # not one layer per hold
    # The link cannot carry it: the estimate stalls, the leg steps down and holds.
    for t in (11.0, 13.0, 15.0, 16.0):
        chooser.set_estimate(230_000, t)
        current = chooser.choose(ranked, ranked[2], t)
    assert current is not ranked[2]
    chooser.ask(LayerRequest(max_width=320, max_height=180))
    chooser.ask(LayerRequest(max_width=1280, max_height=720))
    assert chooser.choose(ranked, ranked[0], 16.5) is not ranked[2]  # on hold: no jump
