"""`vits-jax serve`'s page (GET /, vits_jax/app/page.html) in a real browser: Debian's chromium,
headless, driven through selenium and chromedriver, against a real uvicorn server in this process
(test_serve.Served). The voices are test_serve's small random model and a two-speaker one.

The page's clock is driven by the test (`?clock=manual`, `vitsPage.seek(t)`), so no assertion
depends on how fast anything runs. Without chromium, chromedriver or selenium the test fails and
says what to install: it never skips.
"""

import contextlib
import shutil

import pytest
from conftest import small_config  # noqa: F401  (conftest first: JAX's settings)
from test_serve import TIMEOUT, TINY, TEXTS, Served, speak

from vits_jax.synth.timings import timings
from vits_jax.synth.voice import Voice

TEXT = TEXTS[2]          # three sentences: three lines of /api/speak, each played as it comes
INSTALL = "apt-get install -y chromium chromium-driver"


@pytest.fixture(scope="module")
def voice(model_folder):
    return Voice.load(model_folder(5, **TINY), expand_numbers=True, fold_diacritics=True)


@pytest.fixture(scope="module")
def served(voice, model_folder):
    duo = Voice.load(model_folder(6, **dict(TINY, num_speakers=2, speaker_embedding_size=4)))
    s = Served({"tiny": voice, "duo": duo}, batch_size=4, max_queue=8, max_chars=200)
    s.start(warm=False)                  # only "tiny" speaks: compile only what it needs
    s.wait_ready()
    yield s
    s.stop()


@contextlib.contextmanager
def chromium():
    """A headless chromium through chromedriver; fails (inside the test: a FAIL, not a setup
    error) saying what to install when a part is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install selenium (in the `test` extra)")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        missing = " and ".join(n for n, p in (("chromium", binary), ("chromedriver", driver)) if not p)
        pytest.fail(f"{missing} not found: this test drives a headless chromium; install them "
                    f"with `{INSTALL}` (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                 "--no-first-run", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver))   # no driver download
    try:
        browser.set_page_load_timeout(TIMEOUT)
        browser.set_script_timeout(TIMEOUT)
        yield browser
    finally:
        browser.quit()


def page_value(browser, expression):
    return browser.execute_script(f"return {expression};")


def wait_state(browser, *states):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, TIMEOUT).until(lambda b: page_value(b, "vitsPage.state") in states)
    return page_value(browser, "vitsPage.state")


# The columns of the waveform canvas with at least one drawn pixel.
DRAWN_COLUMNS = """
const canvas = document.getElementById("wave");
const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
let drawn = 0;
for (let x = 0; x < canvas.width; x++) {
  for (let y = 0; y < canvas.height; y++) {
    if (data[4 * (y * canvas.width + x) + 3]) { drawn++; break; }
  }
}
return [drawn, canvas.width];
"""

# Steps the page's clock from 0 past the end in steps of arguments[0] seconds; returns the page's
# trace of highlight changes and, at each change, the highlighted element's text.
SWEEP = """
const step = arguments[0], page = window.vitsPage, shown = [];
page.trace = [];
for (let i = 0; i * step <= page.seconds + step; i++) {
  const before = page.trace.length;
  page.seek(i * step);
  if (page.trace.length > before) {
    const current = document.querySelectorAll("#words .word.current");
    shown.push(current.length === 1 ? current[0].textContent : current.length);
  }
}
return [page.trace, shown];
"""


def test_page_speaks_draws_and_highlights_words(served, voice):
    with chromium() as browser:
        check_page(browser, served, voice)


def check_page(browser, served, voice):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(served.url + "/?clock=manual")
    assert wait_state(browser, "ready", "error") == "ready", browser.find_element(By.ID, "status").text

    # the voices of /v1/audio/voices; the speaker select only for the two-speaker voice
    voices = Select(browser.find_element(By.ID, "voice"))
    assert [o.get_attribute("value") for o in voices.options] == ["tiny", "duo"]
    speaker_label = browser.find_element(By.ID, "speaker-label")
    assert not speaker_label.is_displayed()
    voices.select_by_value("duo")
    assert speaker_label.is_displayed()
    assert [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "speaker")).options] == ["0", "1"]
    voices.select_by_value("tiny")
    assert not speaker_label.is_displayed()

    # an error is shown, not thrown: nothing to say
    text = browser.find_element(By.ID, "text")
    text.clear()
    text.send_keys("...")
    browser.find_element(By.ID, "speak").click()
    assert wait_state(browser, "error", "done") == "error"
    assert "nothing" in browser.find_element(By.ID, "status").text

    assert browser.execute_script(DRAWN_COLUMNS)[0] == 0                  # blank before speaking
    text.clear()
    text.send_keys(TEXT)
    rate = browser.find_element(By.ID, "rate")
    rate.send_keys(*[Keys.ARROW_RIGHT] * 5)                               # 1.00 -> 1.25
    assert rate.get_attribute("value") == "1.25"
    browser.find_element(By.ID, "speak").click()
    assert wait_state(browser, "done", "error") == "done", browser.find_element(By.ID, "status").text

    # the audio: what the server's synthesis of the text gives, whole and in the <audio> element
    want = speak(voice, TEXT, seed=0, speaking_rate=1.25 * voice.speaking_rate)
    rate_hz, hop = voice.sampling_rate, voice.config.hop_length
    assert page_value(browser, "vitsPage.sampleRate") == rate_hz
    assert page_value(browser, "vitsPage.samples") == len(want.waveform)
    WebDriverWait(browser, TIMEOUT).until(
        lambda b: page_value(b, "document.getElementById('audio').readyState") >= 1)
    duration = page_value(browser, "document.getElementById('audio').duration")
    assert abs(duration - len(want.waveform) / rate_hz) <= hop / rate_hz             # one frame
    # each sentence went to Web Audio as it came, on a running AudioContext
    assert page_value(browser, "vitsPage.scheduled") == len(want.pieces) == 3
    assert page_value(browser, "vitsPage.audioState()") == "running"

    # the waveform: every column of the canvas drawn (silence is a 1-pixel line)
    drawn, width = browser.execute_script(DRAWN_COLUMNS)
    assert drawn == width

    # the words, highlighted in order, each at a time inside its [start, end) (steps of half a
    # frame: every word, at least a frame long, is met)
    words = [w for piece in timings(want, voice.tokenizer)["pieces"] for w in piece["words"]]
    assert len(words) == len(TEXT.split())
    shown_words = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#words .word")]
    assert shown_words == [w["word"] for w in words]
    trace, shown = browser.execute_script(SWEEP, hop / rate_hz / 2)       # half a frame per step
    assert [e["word"] for e in trace] == [*range(len(words)), -1]         # cleared after the end
    for event, text_shown in zip(trace[:-1], shown):
        word = words[event["word"]]
        assert word["start"] - 1e-9 <= event["time"] < word["end"], (event, word)   # [start, end)
        assert text_shown == word["word"]
    assert trace[-1]["time"] >= len(want.waveform) / rate_hz

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "api/speak" not in e["message"]]        # the 400 above is logged by chromium
    assert not severe, severe
