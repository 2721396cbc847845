"""The card benchmark's report: it replaces only its own section of docs/benchmarks.md."""

from cardshield.bench.card import Operation, Wire, minimum_wire
from cardshield.bench.report import SECTION_END, SECTION_START, render, write_section


def test_card_section_replaced_and_server_section_kept(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\n<!-- server-bench:start -->\nserver figures\n<!-- server-bench:end -->\n")
    write_section(path, "first card run")
    write_section(path, "second card run")
    text = path.read_text()
    assert "server figures" in text and "second card run" in text and "first card run" not in text
    assert text.count(SECTION_START) == 1 and text.count(SECTION_END) == 1


def test_minimum_and_table():
    assert minimum_wire([(5, 2), (20, 258)]) == Wire(2, 285)
    operation = Operation("SIGN TRANSACTION (+VERIFY)", Wire(2, 368), Wire(3, 372), Wire(3, 372), [5.0, 4.0, 9.0])
    text = render([operation], (1.5, 1.2, 2.0), 1280, [])
    assert "| SIGN TRANSACTION (+VERIFY) | 2 / 3 / 3 | 368 / 372 / 372 | 1.01 | 5.0 ms (4.0-9.0) |" in text
    assert "3.3×" in text  # ratio to the OpenSSL floor of the same run
