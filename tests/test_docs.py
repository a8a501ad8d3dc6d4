"""The README's generated sections match the rig YAML and the deformer vocabulary."""
from avatar.spec import docs


def test_readme_generated_sections_are_current():
    text = docs.README.read_text()
    assert docs.render(text) == text, "README is stale: run `python -m avatar.spec.docs`"


def test_readme_has_exactly_two_setup_commands():
    text = docs.README.read_text()
    block = text.split("## Set up", 1)[1].split("```", 2)[1]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2
    assert "avatar demo" in commands[0] and "pytest" in commands[1]
