"""Scraping a running service's `/metrics` over HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Scrape:
    samples: dict[SampleKey, float]
    text: str

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def __sub__(self, before: Scrape) -> Delta:
        return Delta(self, before)


@dataclass(frozen=True)
class Delta:
    after: Scrape
    before: Scrape

    def __call__(self, name: str, **labels: str) -> float:
        return self.after.value(name, **labels) - self.before.value(name, **labels)


def scrape(url: str, headers: dict | None = None) -> Scrape:
    response = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, response.text)


def assert_spans_balance(current: Scrape, transport: str) -> None:
    """Every decoded span is either acknowledged or rejected for one reason."""
    received = current.value("ai_usage_spans_received_total", transport=transport)
    accepted = current.value("ai_usage_spans_accepted_total", transport=transport)
    rejected = sum(
        value for labels, value in current.series("ai_usage_spans_rejected_total").items() if ("transport", transport) in labels
    )
    assert received == accepted + rejected, (received, accepted, rejected)
