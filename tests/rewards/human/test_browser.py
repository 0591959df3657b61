"""End to end in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

A person labels three pairs by clicking (one with ratings, one after a refused half-rating, one that another
tab labeled meanwhile, which is refused), undoes the other tab's label and redoes it with the keyboard; the
export then holds exactly those preferences. One completion holds
markup that would run script if the page inserted it as HTML: it must show as text and run nothing.
"""

from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from agents.cli import main
from rewards.human import LabelTask, display_order

from .conftest import browser_paths, run_server, skip_unless_ci

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> & <b>bold</b>'
TASKS = [
    LabelTask("Continue the review: The film", (HOSTILE, " was a quiet, lovely surprise.")),
    LabelTask("Continue the review: The plot", (" made no sense at all.", " held together well.")),
    LabelTask("Continue the review: The actors", (" were great.", " were wooden.")),
]


@pytest.fixture(scope="module")
def browser():
    # Without a browser or these packages the test skips on a developer's machine, and fails in CI (CI=true).
    if find_spec("fastapi") is None:
        skip_unless_ci('the labeling page needs the "label" extra (fastapi)')
    if find_spec("selenium") is None:
        skip_unless_ci("the browser test needs selenium (the dev extra)")
    browser_paths(CHROMIUM, CHROMEDRIVER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_label_three_pairs_by_clicking_then_export(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)

    def text(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    def click(element_id: str) -> None:
        browser.find_element(By.ID, element_id).click()

    def saved(progress: str) -> None:
        wait.until(lambda d: text("status") == "saved" and text("progress") == progress)

    with run_server(tmp_path, TASKS) as server:
        browser.get(server.url + "/")
        name = browser.find_element(By.ID, "annotator")
        name.send_keys("alice", Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "work").is_displayed() and text("progress") == "0 / 3 labeled")

        # every model text takes its own direction, isolated from the page
        for element_id in ("prompt", "text-a", "text-b"):
            script = f"return getComputedStyle(document.getElementById('{element_id}')).unicodeBidi"
            assert browser.execute_script(script) == "plaintext", element_id
            assert browser.find_element(By.ID, element_id).get_attribute("dir") == "auto"

        # task 1: the hostile completion shows as text, and no script ran
        order = display_order("alice", TASKS[0].id)
        shown = [TASKS[0].completions[int(i) - 1] for i in order]
        assert text("prompt") == TASKS[0].prompt
        assert browser.find_element(By.ID, "text-a").get_attribute("textContent") == shown[0]
        assert browser.find_element(By.ID, "text-b").get_attribute("textContent") == shown[1]
        hostile_side = "text-a" if shown[0] == HOSTILE else "text-b"
        assert browser.find_element(By.ID, hostile_side).find_elements(By.CSS_SELECTOR, "*") == []  # no elements
        assert browser.execute_script("return window.pwned") is None
        for dim, value in zip(("coherence", "creativity", "relevance", "fluency"), (4, 2, 5, 3), strict=True):
            click(f"rate-a-{dim}-{value}")
        browser.find_element(By.ID, "note").send_keys("A is clearer")
        click("choose-a")
        saved("1 / 3 labeled")

        # task 2: a half-filled rating is refused on the page, nothing is sent; cleared, the label goes through
        click("rate-b-fluency-2")
        click("choose-b")
        wait.until(lambda d: "rate all four dimensions of B" in text("status"))
        assert text("progress") == "1 / 3 labeled"
        browser.find_element(By.CSS_SELECTOR, "#ratings-b button").click()
        click("choose-b")
        saved("2 / 3 labeled")

        # task 3: meanwhile labeled as a tie in another tab; the page's own label is refused, and the page moves on
        body = {"annotator": "alice", "task_id": TASKS[2].id, "shown": "12", "choice": "tie"}
        httpx.post(server.url + "/api/labels", json=body, timeout=10).raise_for_status()
        click("choose-a")
        wait.until(lambda d: text("status").startswith("NOT saved: 409: ") and text("progress") == "3 / 3 labeled")
        detail = browser.find_element(By.CSS_SELECTOR, "#status bdi").text  # isolated: it quotes user text
        assert f"'alice' has already labeled task '{TASKS[2].id}'" in detail
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
        # undo the other tab's tie, then pick A with the keyboard instead
        click("undo")
        wait.until(lambda d: text("status") == "undone" and text("progress") == "2 / 3 labeled")
        assert text("prompt") == TASKS[2].prompt
        ActionChains(browser).send_keys("1").perform()
        saved("3 / 3 labeled")
        assert browser.execute_script("return window.pwned") is None

        # a reload remembers the annotator and shows that all is done
        browser.refresh()
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed() and text("progress") == "3 / 3 labeled")

    out = tmp_path / "prefs.jsonl"
    assert main(["label", "export", "--db", str(server.db), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    pairs = [r for r in records if "chosen" in r]
    ratings = [r for r in records if "ratings" in r]

    def shown_as(task: LabelTask, letter: str) -> str:
        return task.completions[int(display_order("alice", task.id)["AB".index(letter)]) - 1]

    assert [(p["prompt"], p["chosen"]) for p in pairs] == [
        (TASKS[0].prompt, shown_as(TASKS[0], "A")),
        (TASKS[1].prompt, shown_as(TASKS[1], "B")),
        (TASKS[2].prompt, shown_as(TASKS[2], "A")),
    ]
    assert all(p["annotator"] == "alice" for p in pairs)
    assert ratings == [
        {
            "prompt": TASKS[0].prompt,
            "completion": shown_as(TASKS[0], "A"),
            "ratings": {"coherence": 4.0, "creativity": 2.0, "relevance": 5.0, "fluency": 3.0},
            "task_id": TASKS[0].id,
            "annotator": "alice",
            "labeled_at": ratings[0]["labeled_at"],
        }
    ]
