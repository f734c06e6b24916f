"""Late context across a restart of `ai-usage serve`: what the restarted service still attributes.

The context resolver remembers recent traces in memory only. Each case below
sends some spans of one Umbraco.AI trace before the service stops (gracefully
or with SIGKILL) and the rest after it started again on the same data
directory, then reads each call's profile from the audit log and the
breakdown by profile over HTTP. README: "Late context across restarts and
processes"; tests/integration/test_context_across_processes.py has the same
cases for another process and for a trace past its window.
"""

from __future__ import annotations

import signal

import pytest
import requests

from tests.api.reference import stamp
from tests.e2e.test_otlp_protocol import PROTO
from tests.support.service import ServiceProcess
from tests.support.spans import request, span, span_id
from tests.support.usage import DAY, DAY_NS, HOUR_NS, get, live_ids

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
SECOND = 10**9


def tags(profile: str) -> dict:
    return {"umbraco.ai.profile.id": profile, "umbraco.ai.profile.alias": f"{profile}-alias",
            "umbraco.ai.user.id": "user-1", "umbraco.ai.user.name": "Ada"}


class Case:
    """One trace: the spans sent before the restart, those sent after (in order, one export each), and what each call ends up as."""

    def __init__(self, n: int):
        self.trace = f"{n + 1:08x}" + "c0ffee00" * 3
        self.start = DAY + 10 * HOUR_NS + n * 60 * SECOND
        self.before: list = []
        self.after: list[list] = []
        self.expected: dict[str, str] = {}  # audit id -> profile id ("" for none)

    def span(self, attributes: dict, parent: str = "", offset: int = 0):
        return span(attributes, trace=self.trace, parent=parent, start=self.start + offset, duration=30 * SECOND - offset)

    def call(self, parent, offset: int, profile: str):
        chat = self.span(CHAT, parent.span_id.hex(), offset)
        self.expected[self.trace + chat.span_id.hex()] = profile
        return chat


def cases() -> list[Case]:
    made = []

    # The request span (the root) arrives after the restart, alone: it reaches the stored call.
    root_alone = Case(len(made)); made.append(root_alone)
    root = root_alone.span(tags("p-root-alone"))
    middle = root_alone.span({}, root.span_id.hex(), 1)
    root_alone.before = [root_alone.call(middle, 2, "p-root-alone"), middle]
    root_alone.after = [[root]]

    # A request span with a remote parent (not the root), with the span linking it to the call.
    linked = Case(len(made)); made.append(linked)
    top = linked.span(tags("p-linked"), parent=span_id())
    middle = linked.span({}, top.span_id.hex(), 1)
    linked.before = [linked.call(middle, 2, "p-linked")]
    linked.after = [[middle, top]]

    # The same, but the linking span went to the service before the restart: nothing stored it.
    cut = Case(len(made)); made.append(cut)
    top = cut.span(tags("p-cut"), parent=span_id())
    middle = cut.span({}, top.span_id.hex(), 1)
    cut.before = [cut.call(middle, 2, ""), middle]
    cut.after = [[top]]

    # A second call of the trace comes with the request span: the first, stored before, is read back too.
    with_sibling = Case(len(made)); made.append(with_sibling)
    root = with_sibling.span(tags("p-sibling-with"))
    with_sibling.before = [with_sibling.call(root, 1, "p-sibling-with")]
    with_sibling.after = [[with_sibling.call(root, 2, "p-sibling-with"), root]]

    # A second call arrives first, then the request span: the same.
    sibling_first = Case(len(made)); made.append(sibling_first)
    root = sibling_first.span(tags("p-sibling-first"))
    sibling_first.before = [sibling_first.call(root, 1, "p-sibling-first")]
    sibling_first.after = [[sibling_first.call(root, 2, "p-sibling-first")], [root]]

    # The request span came before the restart, the call after: the ancestor was only remembered.
    ancestor_first = Case(len(made)); made.append(ancestor_first)
    root = ancestor_first.span(tags("p-ancestor-first"))
    ancestor_first.before = [root]
    ancestor_first.after = [[ancestor_first.call(root, 1, "")]]
    return made


def post(service: ServiceProcess, spans: list) -> None:
    response = requests.post(f"{service.url}/v1/traces", data=request(*spans, scope="Umbraco.AI"), headers=PROTO, timeout=15)
    assert response.status_code == 200, response.text


def profiles(service: ServiceProcess) -> dict[str, str]:
    answer = requests.get(f"{service.url}/umbraco/ai/management/api/v1/audit-logs", params={"take": 1000}, timeout=10)
    assert answer.status_code == 200, answer.text
    return {item["id"]: item["profileId"] or "" for item in answer.json()["items"]}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["graceful restart", "after SIGKILL"])
def test_which_late_context_a_restarted_service_still_applies(tmp_path, stop):
    service = ServiceProcess(tmp_path / "data").start()
    made = cases()
    try:
        for case in made:
            post(service, case.before)
        assert set(profiles(service).values()) == {""}, "no context before the restart"
        if stop == signal.SIGKILL:
            service.kill()
        else:
            assert service.stop(stop) == 0, service.output()
        service.start()
        for case in made:
            for spans in case.after:
                post(service, spans)

        expected = {key: profile for case in made for key, profile in case.expected.items()}
        assert profiles(service) == expected
        assert sorted(live_ids(service)) == sorted(expected), "each call once"
        breakdown = get(service, "analytics/usage-by-profile", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
        assert {item["dimension"]: item["requestCount"] for item in breakdown} == {
            "p-root-alone": 1, "p-linked": 1, "p-sibling-with": 2, "p-sibling-first": 2, "Unknown Profile": 2,
        }
    finally:
        service.stop()
