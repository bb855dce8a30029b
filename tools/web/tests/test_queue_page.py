"""The local queue's web page in a real headless Chromium, against a real queue with real
agent processes: log in with a typed token or with the one-time link of `farm queue url`
(which works once and never puts the token in an address), watch a submitted job progress
to Completed, read a running job's live log, stop it, restart it, see the agents, and save a
screenshot.

Run with:  FARM_BIN=target/debug/farm python3 -m pytest tools/web/tests
Needs Debian's chromium and chromium-driver (tools/ci/katana-and-web.sh installs them).
"""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ARTIFACTS = os.environ.get("FARM_WEB_ARTIFACTS", os.path.join(REPO, "target", "web-test"))


def farm_bin():
    path = os.environ.get("FARM_BIN") or os.path.join(REPO, "target", "debug", "farm")
    if not os.path.exists(path):
        pytest.fail("the farm binary is missing: build it (cargo build -p farm) or set FARM_BIN")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, probe, timeout=60.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = probe()
        except Exception as e:  # the page may be mid-update
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    pytest.fail("timed out waiting for %s (last: %r)" % (what, last))


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    port = free_port()
    data = root / "data"
    config = root / "farms.yaml"
    config.write_text(
        "farms:\n  q:\n    adapter: local\n    settings: {url: 'http://127.0.0.1:%d', data_root: '%s', autostart: false}\n"
        % (port, data))
    env = dict(os.environ, FARM_CONFIG=str(config))
    server = subprocess.Popen([farm_bin(), "queue", "serve", "--port", str(port), "--data-root", str(data),
                               "--agents", "2", "--kill-grace", "1s"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(str(root / "server.log"), "w"))

    def farm(*args, stdin=None):
        out = subprocess.run([farm_bin(), "--farm", "q", "--output", "json"] + list(args), env=env, input=stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    try:
        wait_until("the queue", lambda: subprocess.run([farm_bin(), "--farm", "q", "list"], env=env,
                                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0)

        def login_url():
            """A fresh one-time link from `farm queue url`."""
            return subprocess.run([farm_bin(), "queue", "url", "--url", "http://127.0.0.1:%d" % port, "--data-root", str(data)],
                                  stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()

        yield {"base": "http://127.0.0.1:%d/" % port, "login_url": login_url, "farm": farm, "root": root,
               "token": (data / "api.token").read_text().strip()}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", "--user-data-dir=%s" % tmp_path_factory.mktemp("chromium")):
        options.add_argument(flag)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def row(browser, job_id):
    return browser.find_element(By.CSS_SELECTOR, '#jobs tbody tr[data-id="%s"]' % job_id)


def row_state(browser, job_id):
    try:
        return row(browser, job_id).find_element(By.CSS_SELECTOR, "td.state").text
    except Exception:
        return None


def submit(queue, request):
    return queue["farm"]("submit", "-", stdin=json.dumps(request))["jobs"][0]["id"]


def logged_out(browser, url):
    browser.get(url)
    browser.execute_script("sessionStorage.clear()")


def exchange(queue, code, content_type="application/json"):
    """POSTs a login code as the page does; returns (status, body)."""
    request = urllib.request.Request(queue["base"] + "web/v1/session", data=json.dumps({"code": code}).encode(),
                                     headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "{}")


def test_the_page_asks_for_the_token_and_refuses_a_wrong_one(queue, browser):
    logged_out(browser, queue["base"])
    browser.get(queue["base"])
    wait_until("the token form", lambda: browser.find_element(By.ID, "login").is_displayed())
    browser.find_element(By.ID, "token").send_keys("wrong-token")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_until("the refusal", lambda: "refused" in browser.find_element(By.ID, "login-error").text)
    assert not browser.find_element(By.ID, "app").is_displayed()
    # The right token, typed, is accepted.
    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.ID, "token").send_keys(queue["token"])
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_until("the job table", lambda: browser.find_element(By.ID, "app").is_displayed())
    assert queue["token"] not in browser.current_url


def test_a_login_link_works_once_and_never_carries_the_token(queue, browser):
    url = queue["login_url"]()
    assert "#code=" in url, url
    assert queue["token"] not in url, "farm queue url must not print the token"
    logged_out(browser, queue["base"])
    browser.get(url)
    wait_until("the job table", lambda: browser.find_element(By.ID, "app").is_displayed())
    assert "code=" not in browser.current_url, "the code must leave the address bar"
    assert queue["token"] not in browser.current_url
    # The same link again, in a tab without a session: refused, the page asks for the token.
    logged_out(browser, queue["base"])
    browser.get(url)
    wait_until("the refusal of a used link", lambda: "refused" in browser.find_element(By.ID, "login-error").text)
    assert not browser.find_element(By.ID, "app").is_displayed()
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, "queue-page-used-link.png"))
    assert queue["token"] not in browser.current_url
    # At the API: a used code gets 401, and a fresh one works once, as JSON only.
    code = url.split("#code=", 1)[1]
    assert exchange(queue, code)[0] == 401
    fresh = queue["login_url"]().split("#code=", 1)[1]
    assert exchange(queue, fresh, content_type="text/plain")[0] == 415
    status, body = exchange(queue, fresh)
    assert (status, body.get("token")) == (200, queue["token"])
    assert exchange(queue, fresh)[0] == 401


def test_a_job_progresses_to_completed_on_the_page(queue, browser):
    browser.get(queue["login_url"]())
    wait_until("the job table", lambda: browser.find_element(By.ID, "app").is_displayed())
    assert "code=" not in browser.current_url, "the code must leave the address bar"
    job_id = submit(queue, {
        "name": "web frames", "frames": "1-4", "chunk_size": 1,
        "commands": [["/bin/sh", "-c", "echo frame $FARM_FRAME; sleep 0.5"]],
    })
    wait_until("the new job on the page", lambda: row_state(browser, job_id) in ("Waiting", "Running"))
    wait_until("Completed", lambda: row_state(browser, job_id) == "Completed")
    frames = row(browser, job_id).find_element(By.CSS_SELECTOR, "td.frames").text
    assert frames == "4/4", frames
    row(browser, job_id).click()
    wait_until("the log of every frame", lambda: all(
        ("frame %d" % f) in browser.find_element(By.ID, "log").text for f in range(1, 5)))
    assert browser.find_element(By.ID, "stop").get_attribute("disabled")
    assert not browser.find_element(By.ID, "restart").get_attribute("disabled")


def test_stop_and_restart_a_running_job_from_the_page(queue, browser):
    beat = queue["root"] / "beat"
    job_id = submit(queue, {
        "name": "web long job",
        "commands": [["/bin/sh", "-c", 'echo started; while :; do echo x >> "$1"; sleep 0.1; done', "sh", str(beat)]],
    })
    browser.get(queue["login_url"]())
    wait_until("Running", lambda: row_state(browser, job_id) == "Running")
    row(browser, job_id).click()
    wait_until("the live log", lambda: "started" in browser.find_element(By.ID, "log").text)
    browser.find_element(By.ID, "stop").click()
    wait_until("Cancelled", lambda: row_state(browser, job_id) == "Cancelled")
    size = beat.stat().st_size
    time.sleep(1.0)  # the heartbeat writes every 0.1 s: a second of silence means it is gone
    assert beat.stat().st_size == size, "the job's processes kept running after Cancelled"
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, "queue-page-stopped.png"))
    browser.find_element(By.ID, "restart").click()
    wait_until("the restart", lambda: row_state(browser, job_id) in ("Waiting", "Running"))
    wait_until("attempt 2 in the details", lambda: "attempt 2" in browser.find_element(By.ID, "meta").text)
    browser.find_element(By.ID, "stop").click()
    wait_until("Cancelled again", lambda: row_state(browser, job_id) == "Cancelled")
    assert queue["farm"]("status", job_id)["jobs"][0]["attempt"] == 2


def test_the_agents_are_listed_with_what_they_run(queue, browser):
    browser.get(queue["login_url"]())

    def agents():
        rows = browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr")
        return [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]

    listed = wait_until("two live local agents", lambda: [a for a in agents() if a[1] == "local" and a[3] == "yes"])
    assert len(listed) >= 2, agents()
    go = queue["root"] / "go"
    job_id = submit(queue, {"name": "agent probe", "commands": [["/bin/sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.1; done', "sh", str(go)]]})
    wait_until("an agent running the job", lambda: any(("job %s " % job_id) in a[4] for a in agents()))
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, "queue-page.png"))
    go.write_text("go")
    wait_until("Completed", lambda: queue["farm"]("status", job_id)["jobs"][0]["state"] == "Completed")
