"""Static browser app (plain ES modules) served by signaling."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent
