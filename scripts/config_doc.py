"""Regenerate the settings table of docs/configuration.md from relayroom.signaling.config."""

from pathlib import Path

from relayroom.signaling.config import setting_docs

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def table() -> str:
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for name, env, default, doc in setting_docs():
        rows.append(f"| `{name}` | `{env}` | `{default}` | {doc} |")
    return "\n".join(rows)


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
