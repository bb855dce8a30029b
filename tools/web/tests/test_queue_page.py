"""The local queue's web page in a real headless Chromium, against a real queue with real
agent processes: log in with a typed token or with the one-time link of `farm queue url`
(which works once and never puts the token in an address), watch a submitted job progress
to Completed, read a running job's live log, stop it (after a confirmation, by button or
key), restart it, change its priority, filter, search and sort, keep a text selection
across refreshes, read a log without duplicate lines, see thumbnails of its images, the task
table (as the tasks API lists it) and "Retry failed tasks", see and disable
the agents, the banner when the queue is unreachable, the layout at 800 px, and screenshots
in light and dark themes (target/web-test/).

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
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

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


def confirm(browser, ok):
    """Answers the page's confirmation dialog."""
    wait_until("the confirmation", lambda: browser.find_element(By.ID, "confirm").is_displayed())
    browser.find_element(By.ID, "confirm-ok" if ok else "confirm-cancel").click()
    wait_until("the dialog to close", lambda: not browser.find_element(By.ID, "confirm").is_displayed())


def call(queue, method, path, body=None):
    """Calls the queue's API with its token; returns (status, parsed body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(queue["base"] + path.lstrip("/"), data=data, method=method,
                                     headers={"Authorization": "Bearer " + queue["token"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def open_page(queue, browser):
    browser.get("about:blank")  # a fresh page: a link differing only in its fragment would not reload
    browser.get(queue["login_url"]())
    wait_until("the job table", lambda: browser.find_element(By.ID, "app").is_displayed())


def screenshot(browser, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, name))


def dark(browser, on):
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]})


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
    confirm(browser, True)
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
    confirm(browser, True)
    wait_until("Cancelled again", lambda: row_state(browser, job_id) == "Cancelled")
    assert queue["farm"]("status", job_id)["jobs"][0]["attempt"] == 2


def test_the_agents_are_listed_with_what_they_run(queue, browser):
    browser.get(queue["login_url"]())

    def agents():
        rows = browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr")
        return [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]

    listed = wait_until("two live local agents", lambda: [a for a in agents() if "local" in a[0] and a[1] == "alive"])
    assert len(listed) >= 2, agents()
    assert all(a[2].endswith("ago") and a[4] in ("0/1", "1/1") for a in listed), agents()
    go = queue["root"] / "go"
    job_id = submit(queue, {"name": "agent probe", "commands": [["/bin/sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.1; done', "sh", str(go)]]})
    wait_until("an agent running the job", lambda: any(("job %s " % job_id) in a[5] for a in agents()))
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.save_screenshot(os.path.join(ARTIFACTS, "queue-page.png"))
    go.write_text("go")
    wait_until("Completed", lambda: queue["farm"]("status", job_id)["jobs"][0]["state"] == "Completed")


def test_agents_can_be_disabled_and_enabled_from_the_page(queue, browser):
    open_page(queue, browser)
    first = wait_until("an agent row", lambda: browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr"))[0]
    agent_id = first.get_attribute("data-id")
    agent_row = lambda: browser.find_element(By.CSS_SELECTOR, '#agents tbody tr[data-id="%s"]' % agent_id)
    agent_row().find_element(By.TAG_NAME, "button").click()
    wait_until("disabled", lambda: agent_row().find_elements(By.TAG_NAME, "td")[1].text == "disabled")
    status, listed = call(queue, "GET", "/v1/agents")
    assert [a["disabled"] for a in listed["agents"] if str(a["id"]) == agent_id] == [True]
    agent_row().find_element(By.TAG_NAME, "button").click()
    wait_until("enabled again", lambda: agent_row().find_elements(By.TAG_NAME, "td")[1].text == "alive")


def test_rows_are_updated_in_place_and_a_text_selection_survives(queue, browser):
    open_page(queue, browser)
    job_id = submit(queue, {"name": "selectable name", "frames": "1-8", "chunk_size": 1,
                            "commands": [["/bin/sh", "-c", "sleep 0.4"]]})
    wait_until("Running", lambda: row_state(browser, job_id) == "Running", timeout=30)
    browser.execute_script("""
        const row = document.querySelector('#jobs tbody tr[data-id="' + arguments[0] + '"]');
        row.dataset.probe = 'same element';
        const range = document.createRange();
        range.selectNodeContents(row.querySelector('td.name'));
        getSelection().removeAllRanges();
        getSelection().addRange(range);""", job_id)
    before = row(browser, job_id).find_element(By.CSS_SELECTOR, "td.frames").text
    wait_until("progress while selected", lambda: row(browser, job_id).find_element(By.CSS_SELECTOR, "td.frames").text != before)
    time.sleep(2.5)  # two more refreshes
    assert browser.execute_script("return getSelection().toString()") == "selectable name"
    assert row(browser, job_id).get_attribute("data-probe") == "same element", "the row was rebuilt"
    wait_until("Completed", lambda: row_state(browser, job_id) == "Completed")
    assert browser.execute_script("return getSelection().toString()") == "selectable name"


def test_priority_can_be_changed_from_the_page(queue, browser):
    open_page(queue, browser)
    job_id = submit(queue, {"name": "priority probe", "priority": 5, "commands": [["true"]]})
    wait_until("the row", lambda: row_state(browser, job_id))
    assert row(browser, job_id).find_element(By.CSS_SELECTOR, "td.priority").text == "5"
    row(browser, job_id).click()
    field = browser.find_element(By.ID, "priority")
    field.clear()
    field.send_keys("-40")
    browser.find_element(By.ID, "set-priority").click()
    wait_until("the new priority in the row", lambda: row(browser, job_id).find_element(By.CSS_SELECTOR, "td.priority").text == "-40")
    assert call(queue, "GET", "/v1/jobs/%s" % job_id)[1]["priority"] == -40
    assert call(queue, "PATCH", "/v1/jobs/%s" % job_id, {"priority": 2000})[0] == 422
    assert call(queue, "PATCH", "/v1/jobs/%s" % job_id, {"name": "x"})[0] == 422


def visible_names(browser):
    return [r.find_element(By.CSS_SELECTOR, "td.name").text for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")]


def test_filter_search_and_sort(queue, browser):
    open_page(queue, browser)
    a = submit(queue, {"name": "zz alpha lighting", "tags": ["shot:010"], "commands": [["true"]]})
    b = submit(queue, {"name": "zz beta comp", "tags": ["shot:020"], "commands": [["false"]]})
    wait_until("both finished", lambda: row_state(browser, a) == "Completed" and row_state(browser, b) == "Failed")
    search = browser.find_element(By.ID, "search")
    search.send_keys("alpha")
    wait_until("only alpha", lambda: visible_names(browser) == ["zz alpha lighting"])
    search.clear()
    search.send_keys("shot:020")
    wait_until("the tag search", lambda: visible_names(browser) == ["zz beta comp"])
    search.clear()
    search.send_keys("zz ")
    wait_until("both", lambda: sorted(visible_names(browser)) == ["zz alpha lighting", "zz beta comp"])
    assert visible_names(browser) == ["zz beta comp", "zz alpha lighting"], "newest first by default"
    browser.find_element(By.CSS_SELECTOR, '#jobs th[data-sort="name"]').click()
    wait_until("sorted by name", lambda: visible_names(browser) == ["zz alpha lighting", "zz beta comp"])
    Select(browser.find_element(By.ID, "state-filter")).select_by_visible_text("Failed")
    wait_until("only the failed one", lambda: visible_names(browser) == ["zz beta comp"])
    Select(browser.find_element(By.ID, "range")).select_by_visible_text("All jobs")
    wait_until("still filtered after loading every job", lambda: visible_names(browser) == ["zz beta comp"])
    # A finished job can be deleted, after a confirmation.
    row(browser, b).click()
    browser.find_element(By.ID, "delete").click()
    confirm(browser, False)
    assert call(queue, "GET", "/v1/jobs/%s" % b)[0] == 200
    browser.find_element(By.ID, "delete").click()
    confirm(browser, True)
    wait_until("the row gone", lambda: not browser.find_elements(By.CSS_SELECTOR, '#jobs tbody tr[data-id="%s"]' % b))
    assert call(queue, "GET", "/v1/jobs/%s" % b)[0] == 404
    assert call(queue, "DELETE", "/v1/jobs/%s" % b)[0] == 404


def test_stop_asks_first_and_the_keyboard_drives_the_table(queue, browser):
    open_page(queue, browser)
    submit(queue, {"name": "keyboard neighbour", "commands": [["true"]]})
    job_id = submit(queue, {"name": "keyboard target", "commands": [["/bin/sh", "-c", "echo up; sleep 60"]]})
    wait_until("Running", lambda: row_state(browser, job_id) == "Running")
    row(browser, job_id).click()
    browser.find_element(By.ID, "stop").click()
    confirm(browser, False)
    time.sleep(1.5)
    assert row_state(browser, job_id) == "Running", "Cancel in the confirmation must leave the job alone"
    # Arrows move along the rows, Enter opens, s stops (after the same confirmation).
    first = browser.find_element(By.CSS_SELECTOR, "#jobs tbody tr")
    browser.execute_script("arguments[0].focus()", first)
    ActionChains(browser).send_keys(Keys.ARROW_DOWN).perform()
    second = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")[1]
    assert browser.switch_to.active_element == second
    ActionChains(browser).send_keys(Keys.ARROW_UP).perform()
    assert browser.switch_to.active_element.get_attribute("data-id") == first.get_attribute("data-id")
    browser.execute_script("arguments[0].focus()", row(browser, job_id))
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_until("the job opened", lambda: browser.find_element(By.ID, "detail-id").text == job_id)
    ActionChains(browser).send_keys("s").perform()
    confirm(browser, True)
    wait_until("Cancelled", lambda: row_state(browser, job_id) == "Cancelled")


def test_the_log_shows_each_line_once(queue, browser):
    open_page(queue, browser)
    job_id = submit(queue, {"name": "numbered lines", "commands": [["/bin/sh", "-c",
                            'i=1; while [ $i -le 150 ]; do echo "line $i of the log"; i=$((i+1)); sleep 0.02; done']]})
    wait_until("the row", lambda: row_state(browser, job_id))
    # Clicks while the 1-second refresh reads: each would have read from the same offset.
    for _ in range(12):
        row(browser, job_id).click()
        time.sleep(0.15)
    wait_until("Completed", lambda: row_state(browser, job_id) == "Completed")
    wait_until("the whole log", lambda: "line 150 of the log" in browser.find_element(By.ID, "log").text)
    time.sleep(1.5)
    text = browser.execute_script("return document.getElementById('log').textContent")
    path = call(queue, "GET", "/v1/jobs/%s" % job_id)[1]["render_log_filename"]
    with open(path, encoding="utf-8") as f:
        assert text == f.read(), "the page's log differs from the file"
    for i in range(1, 151):
        assert text.count("line %d of the log\n" % i) == 1, i


def test_thumbnails_of_the_images_a_job_declares(queue, browser):
    out = queue["root"] / "frames"
    out.mkdir()
    open_page(queue, browser)
    job_id = submit(queue, {
        "name": "ppm frames", "frames": "1-3", "chunk_size": 1, "environment": {"OUT": str(out)},
        "commands": [["/bin/sh", "-c", 'printf "P3\\n4 2\\n255\\n$((FARM_FRAME*80)) 0 0 0 255 0 0 0 255 255 255 255 '
                      '9 9 9 90 90 90 200 0 200 0 200 200\\n" > "$OUT/f.$FARM_FRAME.ppm"']],
        "native": {"local": {"outputs": ["${OUT}/f.*.ppm"]}},
    })
    (out / "secret.ppm").write_text("P3\n1 1\n255\n0 0 0\n")
    wait_until("Completed", lambda: row_state(browser, job_id) == "Completed")
    row(browser, job_id).click()
    imgs = lambda: browser.find_elements(By.CSS_SELECTOR, "#thumbs img")
    wait_until("three thumbnails", lambda: len(imgs()) == 3 and all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) for i in imgs()))
    assert [i.get_attribute("alt") for i in imgs()] == ["f.1.ppm", "f.2.ppm", "f.3.ppm"]
    screenshot(browser, "queue-page-thumbnails.png")
    # Only declared files: another name in the same directory, or a path, is not served.
    assert call(queue, "GET", "/web/v1/jobs/%s/outputs/secret.ppm" % job_id)[0] == 404
    assert call(queue, "GET", "/web/v1/jobs/%s/outputs/..%%2F..%%2Fetc%%2Fpasswd" % job_id)[0] == 404


def test_task_table_and_retry_of_failed_tasks(queue, browser):
    flag = queue["root"] / "fixed"
    job_id = submit(queue, {"name": "two bad frames", "frames": "1-10", "chunk_size": 1, "commands": [["/bin/sh", "-c",
                    'case "$FARM_FRAME" in 4|7) [ -e "$1" ] || { echo "frame $FARM_FRAME broke"; exit 3; };; esac; echo ok $FARM_FRAME',
                    "sh", str(flag)]]})
    open_page(queue, browser)
    wait_until("Failed", lambda: row_state(browser, job_id) == "Failed")
    row(browser, job_id).click()
    status, page = call(queue, "GET", "/v1/jobs/%s/tasks" % job_id)
    assert status == 200, (status, page)
    rows = lambda: browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")
    wait_until("ten tasks", lambda: len(rows()) == 10)
    failed = [r for r in rows() if r.find_elements(By.TAG_NAME, "td")[2].text.lower() == "failed"]
    assert len(failed) == 2, [r.text for r in rows()]
    cells = lambda r: [td.text for td in r.find_elements(By.TAG_NAME, "td")]
    # index, frames, state, agent, attempt and exit code as the tasks API gives them.
    api = {t["index"]: t for t in page["tasks"]}
    for r in failed:
        index, frames, state, agent, attempt, code = cells(r)[:6]
        t = api[int(index)]
        assert (frames, state, agent, attempt, code) == (t["frames"], "failed", t["agent"], "1", "3"), cells(r)
    assert sorted(cells(r)[1] for r in failed) == ["4", "7"]
    failed[0].find_element(By.LINK_TEXT, "log").click()
    wait_until("that task's part of the log", lambda: "broke" in browser.find_element(By.ID, "log").text)
    flag.write_text("fixed")
    browser.find_element(By.ID, "retry-failed").click()
    wait_until("Completed after the retry", lambda: row_state(browser, job_id) == "Completed")
    wait_until("the retried tasks done, in their second attempt", lambda: sorted(
        (cells(r)[1], cells(r)[2], cells(r)[4]) for r in rows() if cells(r)[1] in ("4", "7")) ==
        [("4", "done", "2"), ("7", "done", "2")])
    assert not browser.find_element(By.ID, "retry-failed").is_displayed()


def test_the_page_at_800_px_in_light_and_dark(queue, browser):
    open_page(queue, browser)
    job_id = submit(queue, {"name": "a job with a rather long name to wrap at eight hundred pixels", "frames": "1-2",
                            "commands": [["/bin/sh", "-c", "echo " + " ".join(["wordy-output-token"] * 40)]]})
    wait_until("Completed", lambda: row_state(browser, job_id) == "Completed")
    row(browser, job_id).click()
    wait_until("the log", lambda: "wordy-output-token" in browser.find_element(By.ID, "log").text)
    try:
        for on in (False, True):
            dark(browser, on)
            browser.set_window_size(1400, 900)
            time.sleep(0.5)
            screenshot(browser, "queue-page-%s.png" % ("dark" if on else "light"))
            browser.set_window_size(800, 900)
            time.sleep(0.5)
            width = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert width[0] <= width[1], "sideways scroll at 800 px: %r" % width
            screenshot(browser, "queue-page-800px-%s.png" % ("dark" if on else "light"))
            background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
            assert (background == "rgb(13, 17, 23)") == on, background
        style = browser.execute_script("const s = getComputedStyle(document.getElementById('log')); return [s.whiteSpace, s.wordBreak, s.overflowWrap]")
        assert style == ["pre-wrap", "normal", "break-word"], style
        lines = browser.execute_script("""const log = document.getElementById('log'); const r = document.createRange();
            r.selectNodeContents(log); return [...r.getClientRects()].length""")
        assert lines > 2, "the long line wraps"
        for token_text in browser.find_element(By.ID, "log").text.split():
            assert token_text in ("wordy-output-token", "farm:") or token_text, token_text
        icon = urllib.request.urlopen(queue["base"] + "favicon.svg", timeout=10)
        assert icon.headers["Content-Type"].startswith("image/svg+xml")
        assert browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href").endswith("/favicon.svg")
    finally:
        dark(browser, False)
        browser.set_window_size(1400, 900)


def test_a_banner_says_when_the_queue_is_unreachable(tmp_path, browser):
    port = free_port()
    data = tmp_path / "data"

    def serve():
        return subprocess.Popen([farm_bin(), "queue", "serve", "--port", str(port), "--data-root", str(data), "--agents", "1"],
                                stdout=subprocess.DEVNULL, stderr=open(str(tmp_path / "server.log"), "a"))
    server = serve()
    try:
        base = "http://127.0.0.1:%d/" % port
        wait_until("the second queue", lambda: urllib.request.urlopen(base + "v1/health", timeout=2).status == 200)
        browser.get(base)
        browser.execute_script("sessionStorage.setItem('farm-token', arguments[0])", (data / "api.token").read_text().strip())
        browser.get(base)
        agent_states = lambda: [r.find_elements(By.TAG_NAME, "td")[1].text for r in browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr")]
        wait_until("a live agent", lambda: "alive" in agent_states())
        assert not browser.find_element(By.ID, "banner").is_displayed()
        server.terminate()
        server.wait(timeout=20)
        wait_until("the banner", lambda: browser.find_element(By.ID, "banner").is_displayed())
        assert "does not answer" in browser.find_element(By.ID, "banner").text
        assert "alive" not in agent_states(), "agents must not look alive while the queue is unreachable"
        screenshot(browser, "queue-page-unreachable.png")
        server = serve()
        wait_until("the banner gone", lambda: not browser.find_element(By.ID, "banner").is_displayed(), timeout=30)
        wait_until("a live agent again", lambda: "alive" in agent_states())
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
