"""The browser explorer (`peftlab report ... --html`) on synthetic records: the page, its data, bad input,
and the page driven in a real headless Chromium (switch the scatter's axes, filter a method, read the DOM).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from peftlab.cli.report import compare_records
from peftlab.cli.report import main as report_main
from peftlab.reporting.explorer import explorer_payload
from peftlab.reporting.figures import non_dominated
from peftlab.reporting.tables import display_frame
from tests.test_report import METHODS, make_records, records_with_predictions

pytest.importorskip("plotly", reason="the explorer needs the `explorer` extra: pip install 'peftlab[explorer]'")


def _data(page: str) -> dict:
    match = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match[1])


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    """Two experiments, one with per-example predictions (paired comparisons), one without; explorer over both."""
    root = tmp_path_factory.mktemp("results")
    accs = {label: spec[1] for label, spec in METHODS.items()}
    paired = records_with_predictions(root / "bert_cls", accs)
    plain = make_records(root / "forget_cls", sweep=False, seeds=(0, 1, 2))
    out = root / "explorer"
    assert report_main([str(paired), str(plain), "--out", str(out), "--html"]) == 0
    return paired, plain, out


def test_one_self_contained_page_is_all_that_is_written(two_experiments):
    _, _, out = two_experiments
    assert [p.name for p in out.iterdir()] == ["explorer.html"]  # --html writes the page only
    page = (out / "explorer.html").read_text()
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    assert f"plotly.js v{get_plotlyjs_version()}" in page and get_plotlyjs() in page  # inlined, not fetched
    ours = page.replace(get_plotlyjs(), "")  # (plotly's bundle names a map-data URL no chart here uses)
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import|https?://", ours)
    assert page.count("</script>") == page.count("<script")  # the embedded JSON cannot close its element


def test_embedded_data_is_the_reports_summary(two_experiments):
    paired, plain, out = two_experiments
    data = _data((out / "explorer.html").read_text())
    summary = compare_records([paired, plain]).summary.reset_index(drop=True)
    display = display_frame(summary, latex=False)
    assert data["table"]["columns"] == list(display.columns)
    assert [r["cells"] for r in data["table"]["rows"]] == display.astype(str).values.tolist()
    assert data["experiments"] == ["bert_cls", "forget_cls"] and set(data["methods"]) == set(METHODS)
    keys = {a["key"] for a in data["axes"]}
    assert {"test_accuracy_mean", "peak_memory_mb", "trainable_params", "train_tokens_per_s", "saved_mb"} <= keys
    assert {"forgetting_wikitext_mean", "forgetting_sst2_probe_mean"} <= keys  # forget_cls carries probes
    for row, (_, s) in zip(data["table"]["rows"], summary.iterrows(), strict=True):
        acc = row["points"]["test_accuracy_mean"]
        assert (acc["low"], acc["high"]) == pytest.approx((s["test_accuracy_low"], s["test_accuracy_high"]))
        if s["method"] != s["reference"] and s["vs_ref_diff"] == s["vs_ref_diff"]:
            assert row["forest"]["diff"] == pytest.approx(s["vs_ref_diff"])
            assert row["forest"]["low"] == pytest.approx(s["vs_ref_low"])
            assert (row["forest"]["test"], row["forest"]["reference"]) == (s["vs_ref_test"], s["reference"])
    assert sum(r["forest"]["diff"] is not None for r in data["table"]["rows"]) == 2 * (len(METHODS) - 1)


def test_runs_link_their_record_files_relatively(two_experiments):
    _, _, out = two_experiments
    data = _data((out / "explorer.html").read_text())
    assert len(data["runs"]) == 2 * 3 * len(METHODS)
    for run in data["runs"]:
        assert not Path(run["record"]).is_absolute()
        record = json.loads((out / run["record"]).read_text())
        assert record["run_id"] == run["run_id"] and record["experiment"] == run["experiment"]
        assert run["curve"]["step"] == [c["step"] for c in record["metrics"]["curve"]]


def test_payload_escapes_what_could_end_the_script(tmp_path):
    results = make_records(tmp_path / "x", sweep=False, forgetting=False, seeds=(0, 1))
    compared = compare_records([results])
    summary = compared.summary.copy()
    summary.loc[0, "method"] = "</script><b>evil"
    from peftlab.reporting.explorer import _script_json

    text = _script_json(explorer_payload(summary, compared.frame, [results], tmp_path))
    assert "<" not in text and json.loads(text)["methods"][0] == "</script><b>evil"


def test_html_on_a_folder_without_records_is_one_line_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    good = make_records(tmp_path / "good", sweep=False, forgetting=False, seeds=(0,))
    for argv in ([str(empty), "--html"], [str(good), str(empty), "--html", "--out", str(tmp_path / "out")],
                 [str(tmp_path / "nowhere"), "--html"]):  # fmt: skip
        assert report_main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in empty.iterdir()) == ["runs"] and not (good / "explorer.html").exists()


def test_html_without_plotly_names_the_extra(tmp_path, monkeypatch, capsys):
    results = make_records(tmp_path / "x", sweep=False, forgetting=False, seeds=(0,))
    monkeypatch.setitem(sys.modules, "plotly.offline", None)  # import fails as if the extra were missing
    assert report_main([str(results), "--html", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --html needs the plotly package: pip install 'peftlab[explorer]'"
    assert not (tmp_path / "out").exists()


def test_cli_module_writes_the_page(tmp_path):
    results = make_records(tmp_path / "x", sweep=False, forgetting=False, seeds=(0, 1))
    done = subprocess.run(
        [sys.executable, "-m", "peftlab.report", str(results), "--html"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {results / 'explorer.html'}"
    assert not (results / "summary.csv").exists()


# ---------------------------------------------------------------- in a real browser


def _chrome():
    """A headless Chromium driven by chromedriver, or a skip that says what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    def found() -> tuple[str | None, str | None]:
        browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        return browser, shutil.which("chromedriver")

    browser, driver_path = found()
    if browser is None or driver_path is None:  # a fresh CI machine: install Debian's, as root
        from apt_install import apt_install

        why = apt_install(["chromium", "chromium-driver"], lambda: None not in found())
        browser, driver_path = found()
        if browser is None or driver_path is None:
            pytest.skip(f"chromium/chromedriver not installed and not installable here: {why}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as err:  # a browser that cannot start here is a skip with the reason, not a failure
        pytest.skip(f"headless chromium did not start: {str(err).splitlines()[0]}")


@pytest.fixture(scope="module")
def browser():
    driver = _chrome()
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _front_by_python(data: dict, x: str, y: str, shown: set[str]) -> list[dict]:
    """The Pareto front per experiment by figures.non_dominated, on the page's own points."""
    better = {a["key"]: a["better"] == "max" for a in data["axes"]}
    fronts = []
    for experiment in data["experiments"]:
        rows = [r for r in data["table"]["rows"] if r["experiment"] == experiment and r["method"] in shown]
        rows = [r for r in rows if r["points"][x]["mean"] is not None and r["points"][y]["mean"] is not None]
        points = [(r["points"][x]["mean"], r["points"][y]["mean"]) for r in rows]
        best = non_dominated(points, (better[x], better[y]))
        on = sorted((p, r["method"]) for p, r, b in zip(points, rows, best, strict=True) if b)
        fronts.append({"experiment": experiment, "methods": [m for _, m in on]})
    return fronts


def test_in_chromium_switch_axes_filter_a_method_and_sort(two_experiments, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, _, out = two_experiments
    page = out / "explorer.html"
    data = _data(page.read_text())
    browser.get(page.resolve().as_uri())
    _wait(browser, "return document.body.dataset.ready === '1'")
    scatter = "document.getElementById('scatter')"
    names = browser.execute_script(f"return {scatter}.data.filter(t => t.meta === 'method').map(t => t.name)")
    assert set(names) == set(METHODS)
    assert browser.execute_script(f"return {scatter}.layout.xaxis.title.text").startswith("peak RSS (MB)")
    rows = browser.find_elements(By.CSS_SELECTOR, "#summary-table tbody tr")
    assert len(rows) == len(data["table"]["rows"]) == 2 * len(METHODS)
    assert json.loads(browser.execute_script(f"return {scatter}.dataset.front")) == _front_by_python(
        data, "peak_memory_mb", "test_accuracy_mean", set(METHODS)
    )

    # switch the scatter to accuracy vs trainable params: the axis, its log scale and the front follow
    Select(browser.find_element(By.ID, "x-axis")).select_by_value("trainable_params")
    _wait(browser, f"return {scatter}.dataset.x === 'trainable_params'")
    assert browser.execute_script(f"return {scatter}.layout.xaxis.type") == "log"  # 8k to 22M parameters
    assert "trainable params" in browser.execute_script(f"return {scatter}.layout.xaxis.title.text")
    front = json.loads(browser.execute_script(f"return {scatter}.dataset.front"))
    assert front == _front_by_python(data, "trainable_params", "test_accuracy_mean", set(METHODS))
    assert "prompt_tuning" in front[0]["methods"]  # the fewest parameters is always on the front
    errors = browser.execute_script(f"return {scatter}.data.filter(t => t.name === 'full')[0].error_y.arrayminus")
    full = [r for r in data["table"]["rows"] if r["method"] == "full"]
    assert errors == pytest.approx([r["points"]["test_accuracy_mean"]["mean"] - r["points"]["test_accuracy_mean"]["low"]
                                    for r in full])  # fmt: skip

    # filter out prompt_tuning: gone from the table, the scatter, the forest plot, the curves and the runs
    browser.find_element(By.CSS_SELECTOR, "#method-filter input[value='prompt_tuning']").click()
    _wait(browser, "return !JSON.parse(document.body.dataset.shownMethods).includes('prompt_tuning')")
    rows = browser.find_elements(By.CSS_SELECTOR, "#summary-table tbody tr")
    methods = {r.get_attribute("data-method") for r in rows}
    assert methods == set(METHODS) - {"prompt_tuning"}
    for plot in ("scatter", "forest", "train-curves", "val-curves"):
        traces = browser.execute_script(f"return document.getElementById('{plot}').data.map(t => t.name)")
        assert "lora" in traces and "prompt_tuning" not in traces, plot
    runs = browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")
    assert len(runs) == 2 * 3 * (len(METHODS) - 1)
    assert json.loads(browser.execute_script(f"return {scatter}.dataset.front")) == _front_by_python(
        data, "trainable_params", "test_accuracy_mean", set(METHODS) - {"prompt_tuning"}
    )
    link = browser.find_element(By.CSS_SELECTOR, "#runs-table tbody a")
    raw = link.get_dom_attribute("href")  # as written in the page; the browser resolves it against the file
    assert raw.startswith("../") and (out / raw).is_file()
    assert Path(urllib.parse.unquote(urllib.parse.urlparse(link.get_attribute("href")).path)).is_file()

    # sort the summary by test accuracy, highest first
    headers = browser.find_elements(By.CSS_SELECTOR, "#summary-table th")
    header = next(h for h in headers if h.text.startswith("test acc"))
    header.click()
    first = browser.find_element(By.CSS_SELECTOR, "#summary-table tbody tr").get_attribute("data-method")
    assert first == "full"  # the most accurate of the synthetic methods in both experiments

    shot = tmp_path / "explorer.png"
    assert browser.save_screenshot(str(shot))
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[0] > 500 and pixels.std() > 0.05  # a drawn page, not a blank one
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_in_chromium_a_page_with_nothing_to_plot_still_works(tmp_path, browser):
    """Every run failed: the table shows the failures, the plots say why they are empty, no script error."""
    from selenium.webdriver.common.by import By

    from peftlab.records.results import write_record
    from tests.test_report import synthetic_record

    results = tmp_path / "broken"
    for label in ("lora", "qlora"):
        for seed in (0, 1):
            rec = synthetic_record("broken", label, label, seed, 0.8, 74_498, 900.0, 660.0, 0.29, {}, forgetting=False)
            rec.update(status="failed", error="RuntimeError: boom", metrics={}, memory={}, speed={}, params={})
            write_record(results, rec)
    assert report_main([str(results), "--html"]) == 0
    browser.get((results / "explorer.html").resolve().as_uri())
    _wait(browser, "return document.body.dataset.ready === '1'")
    rows = browser.find_elements(By.CSS_SELECTOR, "#summary-table tbody tr")
    assert [r.get_attribute("data-method") for r in rows] == ["lora", "qlora"] and "2 failed" in rows[0].text
    for plot in ("scatter", "forest", "train-curves"):
        assert browser.find_element(By.CSS_SELECTOR, f"#{plot} .empty").text, plot
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
