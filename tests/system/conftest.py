# The system floor prints its measured figures (boot time, memory, RSS) at the end of the run.
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def pytest_terminal_summary(terminalreporter):
    mod = sys.modules.get("denali_vm")
    figures = getattr(mod, "FIGURES", None) if mod else None
    if figures:
        terminalreporter.section("denali image figures")
        for name, value in figures.items():
            terminalreporter.write_line(f"{name}: {value}")
