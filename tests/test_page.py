"""The chat page at GET /: served from the package, and driven in Debian's chromium in front
of the fake upstream (Playwright's sync API; the gateway and the fake run in threads).
With API keys on, the page asks for a key and sends it on every request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Dialog, Page, Request, expect, sync_playwright

from cortex.access.keys import generate_key, hash_key
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RECIPE = [
    "## Tortilla",
    " española\n\n",
    "1. Pela",
    " y corta",
    " las **patatas**",
    " en láminas",
    " finas.\n",
    "2. Bate",
    " seis huevos",
    " con sal.\n",
    "3. Cuaja",
    " a fuego `lento` 🍳",
    "\n\n¡Buen provecho!",
]
REPLY = ".msg.assistant .md"
KEY = generate_key()
OTHER = generate_key()
WRONG = generate_key()
MISSING_KEY = "missing API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


# ---- without a browser: how the files are served ----------------------------------------


def test_page_and_assets_are_served_from_the_package(gateway: RunningGateway) -> None:
    web = files("cortex.web")
    browser = {"Accept": "text/html"}
    for path, name, media in [
        ("/", "index.html", "text/html"),
        ("/static/app.css", "app.css", "text/css"),
        ("/static/app.js", "app.js", "text/javascript"),
    ]:
        response = httpx.get(gateway.url + path, headers=browser)
        assert response.status_code == 200
        assert response.headers["content-type"] == f"{media}; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == web.joinpath(name).read_bytes()
        etag = {"If-None-Match": response.headers["etag"], **browser}
        assert httpx.get(gateway.url + path, headers=etag).status_code == 304
    head = httpx.head(gateway.url + "/", headers=browser)
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    assert head.content == b""
    page = httpx.get(gateway.url, headers=browser)
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/__init__.py",
        "/static/index.html",
        "/static/../app.py",
        "/static/..%2F..%2Fpyproject.toml",
        "/static/%2e%2e/__init__.py",
        "/static/",
        "/web/app.js",
    ],
)
def test_only_the_known_files_are_served(path: str, gateway: RunningGateway) -> None:
    response = httpx.get(gateway.url + path)
    assert response.status_code == 404
    assert "cortex" not in response.text.lower()


# ---- in the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


class Tab:
    """A page on Córtex's chat page, recording dialogs, script errors, console messages and
    the requests the page made."""

    def __init__(self, browser: Browser, url: str, **context: Any) -> None:
        self.context = browser.new_context(
            **{"viewport": {"width": 1280, "height": 800}, **context}
        )
        self.context.set_default_timeout(8000)
        self.page: Page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.requests: list[Request] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.goto(url)
        expect(self.page.locator("#model")).to_be_enabled()  # the models are listed

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def ask(self, text: str) -> None:
        self.page.fill("#prompt", text)
        self.page.press("#prompt", "Enter")

    def finished(self) -> None:
        """Wait until the latest answer is over (its stats are final)."""
        latest = self.page.locator(".msg.assistant").last
        expect(latest.locator(".stats.final")).to_be_visible()

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name))

    def api_calls(self) -> list[tuple[str, str | None]]:
        """The page's requests to /api/*: (path, Authorization header), in order."""
        paths = [(urlsplit(r.url).path, r) for r in self.requests]
        return [(p, r.headers.get("authorization")) for p, r in paths if p.startswith("/api/")]

    def saved_key(self) -> str | None:
        key: str | None = self.page.evaluate("sessionStorage.getItem('cortex.apiKey')")
        return key

    def enter_key(self, key: str) -> None:
        self.page.get_by_label("API key", exact=True).fill(key)
        self.page.get_by_role("button", name="Save").click()


OpenTab = Callable[..., Tab]


@pytest.fixture
def open_tab(browser: Browser, start_gateway: StartGateway) -> Iterator[OpenTab]:
    """Open a tab on `at` (a gateway), else on a gateway with the default settings."""
    tabs: list[Tab] = []
    default: list[RunningGateway] = []

    def open_(at: RunningGateway | None = None, **context: Any) -> Tab:
        if at is None:
            default[:] = default or [start_gateway()]
            at = default[0]
        tabs.append(Tab(browser, at.url, **context))
        return tabs[-1]

    yield open_
    for tab in tabs:
        tab.context.close()
        assert tab.errors == []


def test_tokens_appear_before_the_answer_is_complete(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    fake.script = Script(tokens=["Hola"])
    tab.ask("Hola")
    tab.finished()
    fake.script = Script(tokens=RECIPE, delay=0.2)
    tab.ask("Explica paso a paso cómo hacer una tortilla española")
    reply = tab.page.locator(REPLY).last
    expect(reply).to_contain_text("patatas")
    partial = reply.text_content() or ""
    assert "Buen provecho" not in partial  # still four tokens, 0.8 s, to come
    assert tab.page.locator(".msg.assistant").last.get_attribute("aria-busy") == "true"
    assert reply.locator("h2").text_content() == "Tortilla española"
    assert reply.locator("strong").text_content() == "patatas"
    tab.screenshot("page-mid-stream.png")
    expect(reply).to_contain_text("¡Buen provecho!")
    tab.finished()
    assert reply.locator("li").count() == 3
    assert reply.locator("code").text_content() == "lento"
    sent = fake.requests[-1].json
    assert sent["stream"] is True
    assert sent["model"] == DEFAULT_MODEL
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == "Hola"


def test_the_model_choice_is_remembered_and_shift_enter_adds_a_line(
    fake: FakeOllama, open_tab: OpenTab
) -> None:
    fake.models = [DEFAULT_MODEL, "gemma3:270m"]
    page = open_tab().page
    expect(page.locator("#model")).to_have_value(DEFAULT_MODEL)
    page.select_option("#model", "gemma3:270m")
    page.reload()
    expect(page.locator("#model")).to_be_enabled()
    expect(page.locator("#model")).to_have_value("gemma3:270m")
    fake.script = Script(tokens=["Lo", " pienso"], thinking=("Hmm,", " a ver"))
    page.fill("#prompt", "uno")
    page.press("#prompt", "Shift+Enter")
    page.locator("#prompt").press_sequentially("dos")
    page.wait_for_timeout(100)
    assert all(r.path != "/api/chat" for r in fake.requests)
    page.press("#prompt", "Enter")
    expect(page.locator(".msg.assistant .stats.final")).to_be_visible()
    sent = fake.requests[-1].json
    assert sent["model"] == "gemma3:270m"
    assert sent["messages"] == [{"role": "user", "content": "uno\ndos"}]
    assert page.locator(".msg.user .bubble").text_content() == "uno\ndos"
    assert page.locator(".msg.assistant .thoughts").text_content() == "Hmm, a ver"
    assert page.locator(".msg.assistant .md").text_content() == "Lo pienso"
    assert page.locator("#prompt").input_value() == ""


def test_stop_aborts_the_request_and_the_upstream(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    fake.script = Script(count=100, delay=0.2)
    tab.ask("Cuenta una historia larga sobre piratas")
    reply = tab.page.locator(".msg.assistant").last
    expect(reply.locator(".md")).to_contain_text("tok1")
    fake.reset()
    tab.page.click("#stop")
    assert fake.wait_disconnect(timeout=5) is not None
    expect(reply.locator(".stats")).to_contain_text("Stopped")
    expect(tab.page.locator("#send")).to_be_visible()
    expect(tab.page.locator("#stop")).to_be_hidden()
    # The partial answer stays in the conversation.
    fake.script = Script(tokens=["Sí"])
    tab.ask("¿Sigues?")
    tab.finished()
    sent = fake.requests[-1].json["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["content"].startswith("tok0 tok1")


def test_stats_appear_under_a_complete_answer(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    fake.script = Script(tokens=RECIPE, delay=0.05)
    tab.ask("Explica paso a paso cómo hacer una tortilla española")
    tab.finished()
    stats = tab.page.locator(".msg.assistant .stats").last.text_content() or ""
    for label in ("TTFT", "tok/s", "total", f"tokens {len(RECIPE)}", f"eval_count {len(RECIPE)}"):
        assert label in stats
    rate = tab.page.locator(".msg.assistant .stat.rate").last.text_content() or ""
    assert 5 < float(rate.removeprefix("tok/s ")) < 40  # 13 pieces, one every 50 ms
    tab.screenshot("page-complete.png")


def test_model_markup_is_shown_as_text(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    tokens = [
        "<script>alert(1)</script>",
        " <img src=x onerror=alert(2)>",
        " [a](javascript:alert(3))",
        ' [b](https://example.com/"onmouseover="alert(4))',
        " **<b>bold</b>**",
        "\n\n```html\n<script>alert(5)</script>\n```",
    ]
    fake.script = Script(tokens=tokens)
    tab.ask("<img src=y onerror=alert(6)>")
    tab.finished()
    reply = tab.page.locator(REPLY).last
    text = reply.text_content() or ""
    assert "<script>alert(1)</script>" in text
    assert "<img src=x onerror=alert(2)>" in text
    assert "<b>bold</b>" in text
    assert reply.locator("script, img, b, [onerror], [onmouseover]").count() == 0
    assert reply.locator("a").count() == 1
    assert (reply.locator("a").get_attribute("href") or "").startswith("https://example.com/")
    assert reply.locator("a").get_attribute("rel") == "noopener noreferrer"
    assert tab.page.locator(".msg.user .bubble").text_content() == "<img src=y onerror=alert(6)>"
    tab.page.wait_for_timeout(100)
    assert tab.dialogs == []


def test_renderer_escapes_everything_it_does_not_render(open_tab: OpenTab) -> None:
    tab = open_tab()
    rendered = tab.page.evaluate(
        """async (cases) => {
            const { renderMarkdown } = await import("/static/app.js");
            return cases.map((source) => renderMarkdown(source));
        }""",
        [
            "a & b < c > d \" e ' f",
            "`<i>x</i>` and *it* and _it_ and snake_case_name",
            "| h1 | <h2> |\n|---|:-:|\n| <td> | `x` |",
            "> quoted <q>\n\n- one\n  - two <li>\n- three",
            "<https://example.com/a?b=1&c=2>",
        ],
    )
    assert rendered[0] == "<p>a &amp; b &lt; c &gt; d &quot; e &#39; f</p>"
    assert "<code>&lt;i&gt;x&lt;/i&gt;</code>" in rendered[1]
    assert rendered[1].count("<em>it</em>") == 2
    assert "snake_case_name" in rendered[1]
    assert "<th>h1</th>" in rendered[2]
    assert '<th class="align-center">&lt;h2&gt;</th>' in rendered[2]
    assert "<td>&lt;td&gt;</td>" in rendered[2]
    assert rendered[3].startswith("<blockquote><p>quoted &lt;q&gt;</p></blockquote><ul><li>one<ul>")
    assert "<li>two &lt;li&gt;</li></ul></li><li>three</li></ul>" in rendered[3]
    assert 'href="https://example.com/a?b=1&amp;c=2"' in rendered[4]
    assert rendered[4].endswith("</a>&gt;</p>")


def test_a_stream_error_is_shown(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    fake.script = Script(tokens=["Había", " una", " vez", " un"], fault="close_mid", fault_after=2)
    tab.ask("Escribe un cuento corto para mi hija sobre un unicornio")
    tab.finished()
    answer = tab.page.locator(".msg.assistant").last
    expect(answer.locator(".md")).to_have_text("Había una")
    error = answer.locator(".error")
    expect(error).to_be_visible()
    assert error.get_attribute("role") == "alert"
    assert error.text_content() == (
        "the model server closed the stream before the answer was complete"
    )


def test_an_http_error_is_shown(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    fake.models = ["another:latest"]  # the page still offers the model it listed
    tab.ask("hola")
    tab.finished()
    error = tab.page.locator(".msg.assistant .error").last
    expect(error).to_contain_text("HTTP 404")
    expect(error).to_contain_text(f'model "{DEFAULT_MODEL}" not found')
    bubble = tab.page.locator(".msg.user .bubble").last
    expect(bubble).to_have_class("bubble unanswered")


def test_the_page_works_on_a_phone(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab(
        viewport={"width": 375, "height": 700}, is_mobile=True, has_touch=True, color_scheme="dark"
    )
    page = tab.page
    for selector in ("#prompt", "#send", "#model"):
        box = page.locator(selector).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 375
        assert box["y"] + box["height"] <= 700
    fake.script = Script(tokens=RECIPE)
    page.locator(".chip").first.tap()
    tab.finished()
    expect(page.locator(REPLY).last).to_contain_text("¡Buen provecho!")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    expect(page.locator("#send")).to_be_in_viewport()
    tab.screenshot("page-phone.png")


# ---- API keys ----------------------------------------------------------------------------


def write_keys(path: Path, *keys: str) -> None:
    entries = [{"name": f"k{n}", "key_hash": hash_key(key)} for n, key in enumerate(keys)]
    path.write_bytes(orjson.dumps({"keys": entries}))


def test_with_keys_the_page_asks_for_one_and_sends_it(
    fake: FakeOllama, start_gateway: StartGateway, open_tab: OpenTab, tmp_path: Path
) -> None:
    write_keys(tmp_path / "keys.json", KEY)
    tab = open_tab(start_gateway(keys_file=tmp_path / "keys.json"))
    page = tab.page
    form = page.get_by_role("dialog", name="Your API key for Córtex")
    field = page.get_by_label("API key", exact=True)
    reason = page.locator("#key-reason")
    expect(form).to_be_visible()
    expect(reason).to_have_text(MISSING_KEY)
    expect(field).to_be_focused()
    assert field.get_attribute("type") == "password"
    expect(form).to_contain_text("The key stays in this browser tab")
    expect(page.locator("#notice")).to_contain_text("needs an API key")
    tab.screenshot("page-key-asked.png")

    # A wrong key: refused by Córtex, dropped, and asked for again with Córtex's message.
    tab.enter_key(WRONG)
    expect(reason).to_have_text("invalid API key")
    expect(form).to_be_visible()
    assert tab.saved_key() is None

    # Cancel, then send anyway: the 401 marks the message and asks again.
    page.get_by_role("button", name="Cancel").click()
    expect(form).to_be_hidden()
    expect(page.locator("#key")).to_be_visible()
    tab.ask("hola")
    expect(form).to_be_visible()
    expect(reason).to_have_text(MISSING_KEY)
    expect(page.locator(".msg.assistant .error").last).to_contain_text("HTTP 401")
    expect(page.locator(".msg.user .bubble").last).to_have_class("bubble unanswered")
    assert tab.api_calls() == [
        ("/api/tags", None),
        ("/api/tags", f"Bearer {WRONG}"),
        ("/api/chat", None),
    ]
    assert all(r.path != "/api/chat" for r in fake.requests)  # Córtex refused it

    # The right key (Enter saves): the models are listed and the message can be sent again.
    field.fill(KEY)
    field.press("Enter")
    expect(form).to_be_hidden()
    expect(page.locator("#model option")).to_have_attribute("value", DEFAULT_MODEL)
    expect(page.locator("#notice")).to_be_hidden()
    assert tab.saved_key() == KEY
    fake.script = Script(tokens=RECIPE)
    tab.ask("Explica paso a paso cómo hacer una tortilla española")
    tab.finished()
    expect(page.locator(REPLY).last).to_contain_text("¡Buen provecho!")
    assert tab.api_calls()[3:] == [("/api/tags", f"Bearer {KEY}"), ("/api/chat", f"Bearer {KEY}")]
    assert fake.requests[-1].json["messages"][-1]["content"].startswith("Explica")

    # The key is kept for the tab (a reload needs no form), never shown, logged or in a URL.
    page.reload()
    expect(page.locator("#model option")).to_have_attribute("value", DEFAULT_MODEL)
    expect(form).to_be_hidden()
    assert tab.api_calls()[-1] == ("/api/tags", f"Bearer {KEY}")
    assert page.evaluate("localStorage.getItem('cortex.apiKey')") is None
    assert KEY not in page.content()
    assert field.input_value() == ""
    assert not any(KEY in r.url for r in tab.requests)
    assert not any(KEY in message for message in tab.console)

    # Key, at the top: forget it, and Córtex's 401 asks for one again.
    page.get_by_role("button", name="Key").click()
    expect(form).to_be_visible()
    expect(reason).to_be_hidden()
    page.get_by_role("button", name="Forget key").click()
    expect(reason).to_have_text(MISSING_KEY)
    assert tab.saved_key() is None
    assert tab.api_calls()[-1] == ("/api/tags", None)


def test_a_revoked_key_is_dropped_and_asked_for_again(
    fake: FakeOllama, start_gateway: StartGateway, open_tab: OpenTab, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.json"
    write_keys(keys, KEY, OTHER)
    gw = start_gateway(keys_file=keys, keys_refresh=0.1)
    tab = open_tab(gw)
    page = tab.page
    form = page.get_by_role("dialog", name="Your API key for Córtex")
    tab.enter_key(KEY)
    expect(page.locator("#model option")).to_have_attribute("value", DEFAULT_MODEL)
    fake.script = Script(tokens=["Hola"])
    tab.ask("hola")
    tab.finished()

    write_keys(keys, OTHER)  # KEY revoked while the tab is open
    deadline = time.monotonic() + 5
    while httpx.get(gw.url + "/api/tags", headers={"X-API-Key": KEY}).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.05)
    tab.ask("¿Sigues?")
    expect(form).to_be_visible()
    expect(page.locator("#key-reason")).to_have_text("invalid API key")
    expect(page.locator(".msg.user .bubble").last).to_have_class("bubble unanswered")
    assert tab.saved_key() is None

    tab.enter_key(OTHER)
    expect(form).to_be_hidden()
    tab.ask("¿Sigues?")
    tab.finished()
    expect(page.locator(REPLY).last).to_have_text("Hola")
    assert tab.api_calls()[-1] == ("/api/chat", f"Bearer {OTHER}")
    assert [m["content"] for m in fake.requests[-1].json["messages"]] == [
        "hola",
        "Hola",
        "¿Sigues?",
    ]


def test_without_keys_the_page_never_asks(fake: FakeOllama, open_tab: OpenTab) -> None:
    tab = open_tab()
    fake.script = Script(tokens=["Hola"])
    tab.ask("hola")
    tab.finished()
    page = tab.page
    expect(page.locator(REPLY).last).to_have_text("Hola")
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator("#key")).to_be_hidden()
    assert tab.api_calls() == [("/api/tags", None), ("/api/chat", None)]
    assert tab.saved_key() is None
