"""Fail when a pytest run executed fewer tests than expected (a broken collection is not green).

pytest exits 0 when a conftest or a marker expression silently deselects most of the suite, and
exit code 5 ("no tests collected") used to be mapped to success here. This reads the JUnit XML
of the run and exits 1 unless at least ``--min`` tests ran (skipped ones do not count).

    python scripts/check_test_count.py .pytest_cache/junit.xml --min 300
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def executed_tests(junit_xml: Path) -> tuple[int, int]:
    """(tests run, tests skipped) over every ``<testsuite>`` of the report."""
    root = ET.parse(junit_xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(suite.get("tests", 0)) for suite in suites)
    skipped = sum(int(suite.get("skipped", 0)) for suite in suites)
    return total - skipped, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit_xml", type=Path)
    parser.add_argument("--min", type=int, required=True, help="fewest tests that must run")
    args = parser.parse_args(argv)
    if not args.junit_xml.is_file():
        print(
            f"error: {args.junit_xml} not found: did pytest run with --junitxml?", file=sys.stderr
        )
        return 1
    ran, skipped = executed_tests(args.junit_xml)
    if ran < args.min:
        print(
            f"error: only {ran} tests ran ({skipped} skipped), fewer than the {args.min} "
            f"expected: check the collection (conftest errors, -m/-k, testpaths) or lower "
            f"MIN_TESTS in the Makefile if tests were removed on purpose",
            file=sys.stderr,
        )
        return 1
    print(f"{ran} tests ran ({skipped} skipped); at least {args.min} expected: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
