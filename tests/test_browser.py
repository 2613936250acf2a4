"""End to end in a real headless Chromium: `loupe ui` on loopback, upload a photo, read the gallery.

Screenshots at desktop and phone width are saved under test-output/browser/ for a person to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from loupe.base.config import Settings
from tests.conftest import SROIE

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output" / "browser"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def running_ui(receipts_index: Settings):
    port = _free_port()
    env = {**os.environ, "LOUPE_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "loupe.cli", "--index", str(receipts_index.index_dir), "ui", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("loupe ui did not start: " + server.stderr.read().decode()[-2000:])
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture()
def browser(tmp_path: Path):
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "run tests/install_browser.sh first"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_upload_in_a_real_browser_puts_the_right_record_first(running_ui: str, browser, tmp_path: Path) -> None:
    query = tmp_path / "receipt_photo.jpg"
    receipt = Image.open(SROIE / "images" / "003.jpg").convert("RGB")
    receipt.resize((receipt.width // 2, receipt.height // 2)).save(query, quality=70)

    browser.get(running_ui)
    # Streamlit re-renders the page while the answer streams in, so an element found a moment ago can vanish.
    wait = WebDriverWait(browser, 240, ignored_exceptions=(StaleElementReferenceException,))
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]"))
    upload.send_keys(str(query))
    wait.until(lambda d: "receipt_photo.jpg" in d.page_source)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "textarea[data-testid=stChatInputTextArea]"))
    box.send_keys("where else does this photo appear?", Keys.ENTER)

    def first_card(driver) -> str | None:
        cards = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stMarkdownContainer]")
                 if e.text.startswith("#1 ")]
        return cards[0] if cards else None

    assert wait.until(first_card) == "#1 003.jpg"
    wait.until(lambda d: "near-duplicate" in d.page_source)
    images_painted = "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    wait.until(lambda d: d.execute_script(images_painted))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, width in (("desktop", 1280), ("phone", 400)):
        browser.set_window_size(width, 1000)
        browser.execute_script("[...document.querySelectorAll('[data-testid=stMarkdownContainer]')]"
                               ".find(e => e.innerText.startsWith('#1 ')).scrollIntoView({block: 'center'})")
        time.sleep(0.5)
        assert browser.save_screenshot(str(OUTPUT / f"{name}.png"))
    assert Image.open(OUTPUT / "phone.png").width <= 400 * 2  # device pixel ratio at most 2


def _websocket_handshake(url: str, host: str, origin: str) -> str:
    """The status line the UI answers a WebSocket upgrade with, sent with the given Host and Origin."""
    port = int(url.rsplit(":", 1)[1])
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: streamlit\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_a_rebinding_page_cannot_open_the_chat_socket(running_ui: str) -> None:
    port = running_ui.rsplit(":", 1)[1]
    assert " 101 " in _websocket_handshake(running_ui, f"127.0.0.1:{port}", running_ui)
    assert " 101 " in _websocket_handshake(running_ui, f"localhost:{port}", f"http://localhost:{port}")
    # DNS rebinding: the attacker's name now points at 127.0.0.1, so the page is "same origin" with it.
    refused = _websocket_handshake(running_ui, f"attacker.example:{port}", f"http://attacker.example:{port}")
    assert " 101 " not in refused and refused.startswith("HTTP/1.1 4"), refused
    # A foreign page talking to the real address.
    cross = _websocket_handshake(running_ui, f"127.0.0.1:{port}", "http://attacker.example")
    assert " 101 " not in cross, cross
