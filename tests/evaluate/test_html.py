"""`openbook report`: the HTML file of one run and of two compared, checked as a file (self-contained,
every section there) and in a real browser: Debian's chromium, headless, through selenium and
chromium-driver, opens it, finds the plots drawn, filters the question table, and logs no error."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openbook.cli.main import app
from tests.evaluate.test_review import runs  # noqa: F401  (the two scripted runs)

pytest.importorskip("matplotlib", reason="openbook report draws with matplotlib (pip install -e .[dev])")


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("report") / "report.html"
    written = CliRunner().invoke(app, ["report", str(runs[0]), str(runs[1]), "--out", str(out)])
    assert written.exit_code == 0, written.output
    return out


def test_the_report_is_one_self_contained_file_with_every_section(report):
    page = report.read_text()
    for section in ("Headline", "Compared with plain", "Plots", "Questions (plain)"):
        assert f"<h2>{section}</h2>" in page
    assert page.count("<svg") == 2 * 5  # reliability, coverage, letters, time and time per question for each run
    assert "model seconds per question: median" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing fetched at view time
    assert page.count('<tr data-right="') == 10 and "biased" in page


def test_a_single_run_report_and_a_bad_out_are_handled(runs, tmp_path):  # noqa: F811
    out = tmp_path / "one.html"
    assert CliRunner().invoke(app, ["report", str(runs[0]), "--out", str(out)]).exit_code == 0
    assert "Compared with" not in out.read_text()
    refused = CliRunner().invoke(app, ["report", str(runs[0]), "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "is a folder" in refused.output
    assert CliRunner().invoke(app, ["report", str(tmp_path)]).exit_code == 2


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).exists()), None
    )
    if browser is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (make setup installs them)")
    return browser, driver


def test_the_report_renders_and_filters_in_a_real_browser(report):
    browser, driver_path = chromium()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(report.as_uri())
        drawn = driver.execute_script(
            "return [...document.querySelectorAll('figure.plot svg')]"
            ".filter(s => s.getBoundingClientRect().width > 100 && s.querySelectorAll('path').length > 0).length"
        )
        assert drawn == 10
        visible = (
            "return [...document.querySelectorAll('#questions tbody tr')].filter(r => r.offsetParent !== null).length"
        )
        assert driver.execute_script(visible) == 10
        driver.execute_script(
            "const s = document.getElementById('right'); s.value = 'wrong'; s.dispatchEvent(new Event('input'))"
        )
        assert driver.execute_script(visible) == 4  # the odd questions but q5
        assert "4 of 10 questions" in driver.find_element("id", "shown").text
        driver.execute_script(
            "const s = document.getElementById('search'); s.value = 'q3'; s.dispatchEvent(new Event('input'))"
        )
        assert driver.execute_script(visible) == 1
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
