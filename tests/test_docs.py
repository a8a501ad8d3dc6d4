"""The docs' generated sections match the rig YAML and the deformer vocabulary; the README opens with two commands."""
from avatar.spec import docs


def test_generated_doc_sections_are_current():
    text = docs.SLIDERS_PAGE.read_text()
    assert docs.render(text) == text, "docs/sliders.md is stale: run `python -m avatar.spec.docs`"


def test_readme_has_exactly_two_setup_commands():
    text = docs.README.read_text()
    block = text.split("## Set up", 1)[1].split("```", 2)[1]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2
    assert "avatar demo" in commands[0] and "pytest" in commands[1]
