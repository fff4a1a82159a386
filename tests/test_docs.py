from pathlib import Path

from leap_orchestration.intake.codes import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_is_documented():
    doc = (ROOT / "docs" / "error-codes.md").read_text()
    assert all(f"| {code} |" in doc for code in CATALOGUE)


def test_ci_runs_the_readme_test_command():
    last = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ][-1]
    assert last.strip() in (ROOT / "README.md").read_text()
