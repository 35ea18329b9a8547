"""nmt serve's page in a real browser (Debian's Chromium driven by Selenium): what it shows is nmt translate's
output, hovering an output word highlights the source words it attends to, a second model shows side by side,
and the URL brings the same view back. Screenshots go to $NMT_SCREENSHOTS (default: the test's folder)."""

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import checkpoint, run_nmt, start_server

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="needs Chromium and its driver (apt-get install -y chromium chromium-driver; .ci/run installs them)",
)
LINES = ["On Monday, Anna saw two dogs.", "Peter was born on May 1, 1990."]


@pytest.fixture(scope="module")
def page_server(tiny_runs):
    pytest.importorskip("fastapi")
    proc, port = start_server(None, "--model", f"transformer={checkpoint(tiny_runs['transformer'])}", "--model",
                              f"luong={checkpoint(tiny_runs['luong'])}")  # fmt: skip
    yield port
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_window_size(1280, 800)
    yield driver
    driver.quit()


def screenshot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NMT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def wait_for(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def shown(driver, model: str | None = None) -> list[str]:
    from selenium.webdriver.common.by import By

    scope = f'.column[data-model="{model}"] ' if model else ""
    return [e.get_attribute("data-text") for e in driver.find_elements(By.CSS_SELECTOR, f"{scope}.translation")]


def test_the_page_shows_what_nmt_translate_gives_and_links_words(page_server, browser, tiny_runs, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"http://127.0.0.1:{page_server}/")
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    browser.find_element(By.ID, "source").send_keys("\n".join(LINES))
    browser.find_element(By.ID, "translate").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".translation")) == 2)
    expected = run_nmt("translate", "--ckpt", str(checkpoint(tiny_runs["transformer"])),
                       stdin="".join(line + "\n" for line in LINES)).stdout.splitlines()  # fmt: skip
    assert shown(browser) == expected
    texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".translation")]
    assert [t.strip() for t in texts] == [t.strip() for t in expected]  # what the reader sees, shaded token by token
    # Hovering an output word highlights the source words it attends to, and shows its probability.
    token = browser.find_element(By.CSS_SELECTOR, '.line[data-line="0"] .translation .token')
    ActionChains(browser).move_to_element(token).perform()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".srctoken.highlight"))
    assert browser.find_elements(By.CSS_SELECTOR, "#attention th.highlight")
    tip = browser.find_element(By.ID, "tooltip")
    assert tip.is_displayed() and "%" in tip.text
    first = screenshot(browser, "page-1280x800", tmp_path)
    # ... and the reverse: a source word highlights the output words that attend to it most.
    source = browser.find_element(By.CSS_SELECTOR, '#attention th[data-source="0"]')
    ActionChains(browser).move_to_element(source).perform()
    assert browser.find_elements(By.CSS_SELECTOR, "#attention th[data-source].highlight")
    # The Transformer's layer and head can be chosen; the average is there.
    head = Select(browser.find_element(By.ID, "head"))
    assert [o.get_attribute("value") for o in head.options][:2] == ["avg", "0"]
    head.select_by_value("0")
    # A second model, side by side.
    browser.find_element(By.ID, "compare").click()
    Select(browser.find_element(By.ID, "model2")).select_by_value("luong")
    browser.find_element(By.ID, "translate").click()
    wait_for(browser, lambda d: len(shown(d, "luong")) == 2)
    luong = run_nmt("translate", "--ckpt", str(checkpoint(tiny_runs["luong"])),
                    stdin="".join(line + "\n" for line in LINES)).stdout.splitlines()  # fmt: skip
    assert shown(browser, "transformer") == expected and shown(browser, "luong") == luong
    screenshot(browser, "side-by-side-1280x800", tmp_path)
    # The URL holds the view: a reload (or a colleague) gets the same one.
    url = browser.current_url
    assert "compare=1" in url and "model2=luong" in url and "head=0" in url
    browser.get("about:blank")
    browser.get(url)
    wait_for(browser, lambda d: len(shown(d, "luong")) == 2)
    assert shown(browser, "transformer") == expected and shown(browser, "luong") == luong
    assert Select(browser.find_element(By.ID, "head")).first_selected_option.get_attribute("value") == "0"
    assert browser.find_element(By.ID, "source").get_attribute("value") == "\n".join(LINES)
    # Narrow: the columns stack, nothing needs sideways scrolling but the attention table.
    browser.set_window_size(420, 900)
    time.sleep(0.3)
    narrow = screenshot(browser, "page-420x900", tmp_path)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.set_window_size(1280, 800)
    assert first.exists() and narrow.exists()


def test_beam_nbest_and_sampling_from_the_page(page_server, browser, tiny_runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"http://127.0.0.1:{page_server}/?text={LINES[0]}&search=beam&beam=4&nbest=3&model=transformer")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".nbest li")) == 3)
    expected = run_nmt("translate", "--ckpt", str(checkpoint(tiny_runs["transformer"])), "--beam", "4", "--nbest",
                       "3", stdin=LINES[0] + "\n").stdout.splitlines()  # fmt: skip
    items = [li.get_attribute("data-text") for li in browser.find_elements(By.CSS_SELECTOR, ".nbest li")]
    assert items == expected and shown(browser) == expected[:1]
    assert all(
        li.find_element(By.CLASS_NAME, "score").text for li in browser.find_elements(By.CSS_SELECTOR, ".nbest li")
    )
    Select(browser.find_element(By.ID, "search")).select_by_value("sample")
    browser.find_element(By.ID, "translate").click()
    wait_for(browser, lambda d: "search=sample" in d.current_url)
    assert len(shown(browser)) == 1
