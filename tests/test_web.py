"""The site stage's page in a real browser: headless Chromium (Debian's, driven by Selenium)
loads the built site from a loopback server, generates through onnxruntime-web, and matches
Python's onnxruntime on the same noise; it draws digits, asks nothing of another origin, and
says so on the page when the model cannot be loaded."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dcgan.config import NoParams
from dcgan.contract import draw_noise
from dcgan.errors import DcganError
from dcgan.pictures import plots_offline
from dcgan.pipeline import site
from dcgan.pipeline.paths import SitePaths
from dcgan.shipping.sampling import generate, load_session

from .conftest import ROOT

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WEB = ROOT / "web"
ORT_INSTALLED = (WEB / "node_modules" / site.ORT_PACKAGE / "package.json").is_file()
METRICS = {
    "fcd": 12.5,
    "fcd_real_floor": 0.5,
    "mnist_score": 8.25,
    "mnist_score_real": 9.7,
    "min_class_share": 0.081,
    "max_class_share": 0.12,
}
PARAMS = {"prepare.source": "sample", "train.iterations": 6, "train.seed": 3, "export.opset": 17}

needs_ort = pytest.mark.skipif(
    not ORT_INSTALLED, reason="no onnxruntime-web in web/node_modules: npm ci --prefix web"
)
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium here: apt-get install chromium chromium-driver (./run test does it on "
    "CI, as root)",
)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    import onnx

    from dcgan.gan.models import build_generator
    from dcgan.shipping.export import generator_to_onnx

    path = tmp_path_factory.mktemp("onnx") / "generator.onnx"
    model = generator_to_onnx(
        build_generator(100), opset=17, metadata={"params": json.dumps(PARAMS)}
    )
    onnx.save(model, str(path))
    return path


def build_site(web: Path, onnx_file: Path, folder: Path, out: str) -> Path:
    """The site stage on ``web`` and ``onnx_file``, with METRICS as the evaluate stage's
    metrics and no animation, into ``folder / out``."""
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    paths = SitePaths(
        web=web, onnx=onnx_file, metrics=folder / "metrics.json", animation=None, out=folder / out
    )
    return site.run(NoParams(), paths)


@pytest.fixture(scope="module")
def built(tmp_path_factory, onnx_file) -> Path:
    if not ORT_INSTALLED:
        pytest.skip("no onnxruntime-web in web/node_modules: npm ci --prefix web")
    return build_site(WEB, onnx_file, tmp_path_factory.mktemp("site"), "site")


class Server:
    """A static server of one folder on 127.0.0.1 that remembers every path asked of it."""

    def __init__(self, folder: Path) -> None:
        self.paths: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                server.paths.append(self.path)

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator:
    servers: list[Server] = []

    def start(folder: Path) -> Server:
        servers.append(Server(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(needs_browser.kwargs["reason"])
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1100,1800",
        # Chromium's own background requests (updates, safe browsing) go nowhere: offline.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(120)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def open_page(driver, url: str) -> bool:
    """Load the page and wait for dcgan.ready; whether the model loaded. A page whose script
    never set window.dcgan fails with what the browser saw (:func:`page_report`)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.get(url)
    # WebDriver's get can return while the previous document (a new session's data:,) is
    # still the current one (SeleniumHQ/selenium#1364); a script run then runs there. So wait
    # for this page's document to be the current one, and loaded: its deferred app.js has
    # then run, or failed.
    state_js = (
        "return {dcgan: typeof window.dcgan, readyState: document.readyState, href: location.href};"
    )

    def loaded(d) -> bool:
        state = d.execute_script(state_js)
        return state["href"] == url and state["readyState"] == "complete"

    with contextlib.suppress(TimeoutException):  # the report below says which document
        WebDriverWait(driver, 60, poll_frequency=0.05).until(loaded)
    state = driver.execute_script(state_js)
    if state["dcgan"] != "object":
        raise AssertionError(page_report(driver, url, state))
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.dcgan.ready.then(done);"
    )


def page_report(driver, url: str, state: dict) -> str:
    """Why a page has no window.dcgan: the document the driver is in, every request the page
    made with its status or network error, and the browser's console."""
    requests: dict[str, list[str]] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            requests[params["requestId"]] = [params["request"]["url"]]
        elif message["method"] == "Network.responseReceived":
            requests.setdefault(params["requestId"], ["?"]).append(
                str(params["response"]["status"])
            )
        elif message["method"] == "Network.loadingFailed":
            requests.setdefault(params["requestId"], ["?"]).append(params["errorText"])
    console = [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]
    return (
        f"window.dcgan is {state['dcgan']} after driver.get({url!r}) returned: the document "
        f"is {state['href']!r}, readyState {state['readyState']!r}; requests: "
        f"{[' '.join(r) for r in requests.values()]}; console: {console}"
    )


def browser_generate(driver, z: np.ndarray) -> np.ndarray:
    result = driver.execute_async_script(
        """const [z, done] = arguments;
        dcgan.generate(z).then(
          (a) => done({pixels: Array.from(a)}), (e) => done({error: e.message}));""",
        z.tolist(),
    )
    if "error" in result:
        raise AssertionError(result["error"])
    return np.asarray(result["pixels"], np.float32).reshape(len(z), 28, 28, 1)


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@needs_browser
@needs_ort
def test_the_page_generates_what_python_onnxruntime_does(built, browser, serve, onnx_file):
    server = serve(built)
    assert open_page(browser, f"{server.origin}/index.html") is True
    z = draw_noise(5, 100, seed=20261130)
    in_browser = browser_generate(browser, z)
    in_python = generate(load_session(onnx_file), z)
    assert in_browser.shape == (5, 28, 28, 1)
    assert np.abs(in_browser - in_python).max() <= 1e-5
    assert in_browser.std() > 0.01  # not a constant image
    # Every request stayed on the page's origin, and the page fetched its own model.
    urls = requested_urls(browser)
    assert urls and all(u.startswith(server.origin + "/") for u in urls), urls
    assert {"/model.json", "/model.onnx", "/ort-wasm-simd-threaded.wasm"} <= set(server.paths)
    status = browser.find_element("id", "status").text
    assert status.startswith("Ready: the generator loaded in"), status


@needs_browser
@needs_ort
def test_the_page_draws_digits_and_shows_the_card(built, browser, serve):
    from PIL import Image

    server = serve(built)
    assert open_page(browser, f"{server.origin}/") is True
    grid = browser.find_element("id", "grid")
    pixels = np.asarray(Image.open(io.BytesIO(grid.screenshot_as_png)).convert("L"), np.float32)
    # Not blank (an empty canvas is uniformly black): an untrained generator's 64 images,
    # mid-grey textures around 0, drawn into it.
    assert pixels.mean() > 20 and pixels.std() > 1
    before = grid.screenshot_as_png
    browser.find_element("id", "again").click()
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; setTimeout(done, 500);"
    )
    assert grid.screenshot_as_png != before  # fresh digits on each click
    card = browser.find_element("id", "card").text
    assert "FCD (lower is better)\n12.5 (real digits: 0.5)" in card
    assert "Iterations\n6 (batch" in card and "seed 3" in card and "sample" in card


@needs_browser
@needs_ort
def test_generate_refuses_noise_of_the_wrong_width(built, browser, serve):
    server = serve(built)
    assert open_page(browser, f"{server.origin}/index.html") is True
    with pytest.raises(AssertionError, match="noise vector 0 has length 3; the model takes 100"):
        browser_generate(browser, np.zeros((1, 3), np.float32))


@needs_browser
@needs_ort
@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_bad_model_is_a_message_on_the_page(built, browser, serve, tmp_path, damage):
    broken = tmp_path / "site"
    shutil.copytree(built, broken)
    if damage == "garbage":
        (broken / site.SITE_MODEL).write_bytes(b"not an onnx model")
    else:
        (broken / site.SITE_MODEL).unlink()
    server = serve(broken)
    assert open_page(browser, f"{server.origin}/index.html") is False
    status = browser.find_element("id", "status")
    assert "error" in status.get_attribute("class")
    assert status.text.startswith("Could not start the generator: model.onnx is not a loadable")
    assert "dvc repro site" in status.text


@needs_browser
@needs_ort
def test_a_page_whose_script_did_not_load_says_so_and_the_test_says_why(
    built, browser, serve, tmp_path
):
    broken = tmp_path / "site"
    shutil.copytree(built, broken)
    (broken / "app.js").unlink()
    server = serve(broken)
    url = f"{server.origin}/index.html"
    # The test's report: the document it is in, and each request with its status.
    with pytest.raises(AssertionError) as failed:
        open_page(browser, url)
    report = str(failed.value)
    assert f"window.dcgan is undefined after driver.get('{url}')" in report, report
    assert f"the document is '{url}', readyState 'complete'" in report, report
    assert f"{server.origin}/app.js 404" in report and f"{url} 200" in report, report
    # The page's: a user is told, not left with "Loading the generator…".
    status = browser.find_element("id", "status")
    assert "error" in status.get_attribute("class")
    assert status.text.startswith(
        "Could not start the generator: the page's script app.js did not load."
    ), status.text


def test_the_site_needs_the_pinned_onnxruntime_web(tmp_path, onnx_file):
    web = tmp_path / "web"
    web.mkdir()
    for name in (*site.PAGE_FILES, "package-lock.json"):
        shutil.copy(WEB / name, web / name)
    with pytest.raises(
        DcganError, match=r"onnxruntime-web 1\.\d+\.\d+ is not installed in .*npm ci"
    ):
        build_site(web, onnx_file, tmp_path, "out")
    assert not (tmp_path / "out").exists()  # nothing half-built
    with pytest.raises(DcganError, match="not found; run `dvc repro export`"):
        site.model_card(tmp_path / "nowhere.onnx", tmp_path / "metrics.json")


VEGA_INSTALLED = all(
    (WEB / "node_modules" / name / build).is_file()
    for name, build in plots_offline.LIBRARIES.items()
)
needs_vega = pytest.mark.skipif(
    not VEGA_INSTALLED, reason="no Vega in web/node_modules: npm ci --prefix web"
)
# Each chart's canvas, and how many of its pixels are drawn (neither blank nor white).
DRAWN = """return Array.from(document.querySelectorAll('canvas, svg.marks')).map((c) => {
  if (c.tagName.toLowerCase() === 'svg') return c.querySelectorAll('path').length;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] < 600) n++;
  return n;
});"""


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A git copy of the repository (its committed reports are the plots' data), with the
    offline template installed as ./run installs it."""
    import subprocess
    import sys

    from .conftest import make_repo, run

    repo, env = make_repo(tmp_path_factory.mktemp("plots"), {})
    run([sys.executable, "-m", "dcgan.pictures.plots_offline"], repo, env)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert not status.stdout  # the template and the config naming it: both ignored
    return repo, env


@needs_browser
@needs_vega
@pytest.mark.parametrize("command", [["show"], ["diff", "HEAD"]], ids=["show", "diff"])
def test_dvc_plots_draw_every_chart_with_no_request_off_loopback(
    plots_repo, browser, serve, command
):
    from .conftest import run

    repo, env = plots_repo
    out = repo / f"out-{command[0]}"
    run(["dvc", "plots", *command, "-o", str(out)], repo, env)
    page = (out / "index.html").read_text()
    charts = page.count("vegaEmbed(")
    assert charts >= 3  # the losses, D's accuracy and the quality during training
    server = serve(out)
    browser.get_log("performance")
    browser.get(f"{server.origin}/index.html")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(lambda d: len(d.execute_script(DRAWN)) >= charts)
    drawn = browser.execute_script(DRAWN)
    assert len(drawn) == charts and min(drawn) > 100, drawn
    urls = requested_urls(browser)
    assert urls and all(u.startswith((server.origin, "data:", "blob:")) for u in urls), urls


def test_the_plots_template_needs_vega_installed_and_keeps_each_script_whole(tmp_path):
    modules = tmp_path / "node_modules"
    with pytest.raises(DcganError, match=r"no vega in .* run `npm ci --prefix web`"):
        plots_offline.page(modules)
    for name, build in plots_offline.LIBRARIES.items():
        (modules / name / build).parent.mkdir(parents=True)
        (modules / name / "package.json").write_text(json.dumps({"version": "9.9.9"}))
        (modules / name / build).write_text(f"var s = '</script>'; /* {name} */")
    page = plots_offline.page(modules)
    assert page.count("<script>") == page.count("</script>") == 3  # none ends early
    assert "var s = '<\\/script>'" in page and "/* vega-embed 9.9.9 */" in page
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC adds no CDN tags
