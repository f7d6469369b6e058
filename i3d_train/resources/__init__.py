"""Class lists that are dataset facts: Kinetics-400's 400 names in the order of DeepMind's label map."""

from pathlib import Path

KINETICS400_LABELS = Path(__file__).resolve().parents[1] / "resources" / "kinetics400_labels.txt"


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in the order of DeepMind's label map (the released models' output order)."""
    return [line.strip() for line in KINETICS400_LABELS.read_text().splitlines() if line.strip()]
