"""The office console in a real browser (Debian's chromium through Playwright) on findings
delivered by the real publisher through a real mosquitto into the office receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.broker import wait_until
from support.console import PASSWORDS, SPECS, LiveOffice, findings_at

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

LABELS = {
    "ja": ["道路損傷マップ", "緊急", "要補修", "経過観察", "巡回距離", "確認待ち", "絞り込み"],
    "en": ["Road damage map", "Urgent", "Repair needed", "Watch", "Distance patrolled",
           "Review queue", "Filter"],
}  # fmt: skip


def _login(page: Any, live: LiveOffice, name: str, target: str = "/") -> None:
    page.goto(f"{live.url}{target}")
    assert "/login" in page.url  # no session: sent to the login form
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}{target}*")


def _map_ready(page: Any) -> None:
    page.wait_for_selector("#map[data-ready='1']")


def _markers_shown(page: Any) -> int:
    """Findings on the map: single markers plus those inside cluster bubbles."""
    count: int = page.evaluate(
        """() => document.querySelectorAll('path.finding').length +
             [...document.querySelectorAll('.marker-cluster span')]
               .reduce((n, s) => n + Number(s.textContent), 0)"""
    )
    return count


def test_log_in_filter_open_a_finding_and_correct_it(
    live: LiveOffice, page: Any, tmp_path: Path
) -> None:
    _login(page, live, "rev")
    _map_ready(page)
    assert page.text_content("#count-findings") == str(len(SPECS))
    assert wait_until(lambda: _markers_shown(page) == len(SPECS), 10)
    assert float(page.text_content("#coverage-km") or "0") > 0.5  # the 600 m patrol track
    assert page.locator("path.leaflet-interactive[stroke='#6a3d9a']").count() >= 1
    # The tiles cannot be reached: still their attribution, and the points on a plain background.
    assert "地理院タイル" in (page.text_content(".leaflet-control-attribution") or "")

    page.check("#filter input[name=grade][value='3']")
    page.click("#apply")
    page.wait_for_url("**grade=3**")
    _map_ready(page)
    urgent = [f for f in live.findings if f.grade == 3]
    assert page.text_content("#count-findings") == str(len(urgent))
    assert wait_until(lambda: _markers_shown(page) == len(urgent), 10)
    assert page.locator("path.finding.grade-2, path.finding.grade-1").count() == 0
    # The filter is in the URL: a fresh load of the link selects the same.
    page.goto(page.url)
    _map_ready(page)
    assert page.is_checked("#filter input[name=grade][value='3']")
    assert page.text_content("#count-findings") == str(len(urgent))

    page.locator("path.finding.grade-3").first.click()
    page.click(".leaflet-popup a.open-finding")
    page.wait_for_selector("#queue[data-ready='1']")
    fid = page.get_attribute("#queue", "data-finding-id")
    assert fid in {f.id for f in urgent}
    # (no wait_for_function: its polling evaluates strings, which the page's CSP forbids)
    assert wait_until(lambda: page.evaluate("document.getElementById('photo').naturalWidth") > 0,
                      20)  # fmt: skip
    page.fill("#q-note", "shallow, not urgent")
    page.click("#q-title")  # leave the note field: the keys are shortcuts again
    page.keyboard.press("2")
    page.wait_for_selector("#q-status.ok")
    rows = live.office.store.query(
        "SELECT verdict, grade, type_codes, reviewer, note FROM reviews WHERE finding_id = ?",
        (fid,),
    )
    want = {"verdict": "corrected", "grade": 2, "type_codes": "D40", "reviewer": "rev",
            "note": "shallow, not urgent"}  # fmt: skip
    assert [dict(r) for r in rows] == [want]

    for lang, labels in LABELS.items():
        page.goto(f"{live.url}/?lang={lang}")
        _map_ready(page)
        text = page.text_content("body") or ""
        assert [w for w in labels if w not in text] == [], lang
        shot = tmp_path / f"map-{lang}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG")


def test_queue_keys_triage_most_urgent_first(live: LiveOffice, page: Any, tmp_path: Path) -> None:
    _login(page, live, "rev", "/queue?lang=en")
    page.wait_for_selector("#queue[data-ready='1']")
    first = page.get_attribute("#queue", "data-finding-id")
    unreviewed = live.office.store.query(
        "SELECT f.id FROM findings f WHERE NOT EXISTS (SELECT 1 FROM reviews r "
        "WHERE r.finding_id = f.id) ORDER BY f.grade DESC, f.captured_at_utc"
    )
    assert first == unreviewed[0]["id"]
    assert "Keys: j/k" in (page.text_content("body") or "")
    page.keyboard.press("j")
    page.wait_for_selector(f"#queue[data-ready='1']:not([data-finding-id='{first}'])")
    second = page.get_attribute("#queue", "data-finding-id")
    assert second == unreviewed[1]["id"]
    page.keyboard.press("x")
    page.wait_for_selector("#q-status.ok")
    verdicts = live.office.store.query(
        "SELECT verdict FROM reviews WHERE finding_id = ?", (second,)
    )
    assert [r["verdict"] for r in verdicts] == ["not_damage"]
    page.screenshot(path=str(tmp_path / "queue-en.png"))
    assert "Other sightings of this site" in (page.text_content("body") or "")


def test_repair_states_and_a_new_sighting_reopens(
    live: LiveOffice, page: Any, tmp_path: Path
) -> None:
    site_fid = live.findings[5].id  # the D20 crack 500 m north
    site_id = live.office.store.query(
        "SELECT site_id FROM site_findings WHERE finding_id = ?", (site_fid,)
    )[0]["site_id"]
    _login(page, live, "rev", f"/sites/{site_id}")
    steps = [
        ("confirmed", {}),
        ("scheduled", {"#repair-assignee": "Road crew 3", "#repair-due": "2024-05-10"}),
        ("repaired", {"#repair-on": "2024-05-02", "#repair-by": "Road crew 3",
                      "#repair-note": "patched"}),
        ("closed", {}),
    ]  # fmt: skip
    for state, fields in steps:
        page.select_option("#repair-next", state)
        for selector, value in fields.items():
            page.fill(selector, value)
        page.click("#repair-submit")
        page.wait_for_selector(f"#repair-state[data-state='{state}']")
    # From closed the only way is back to new.
    assert page.locator("#repair-next option").all_inner_texts() == ["新規"]
    orders = page.request.get(f"{live.url}/export/work-orders.csv").text()
    assert f"\n{site_id},D20," in orders and "Road crew 3" in orders and ",closed," in orders

    # The damage is seen again after the repair: a new finding through the broker.
    again = findings_at([(2, "D20", 500.0, 2 * 24 * 60)], seq0=100)
    live.deliver(again)

    def reopened() -> bool:
        page.reload()
        return page.get_attribute("#repair-state", "data-state") == "new"

    assert wait_until(reopened, 30, interval_s=0.5), "the re-sighted site was not reopened"
    assert again[0].id in (page.text_content("#reopened") or "")
    trail = live.office.store.query(
        "SELECT actor, action, json_extract(detail, '$.state') AS state FROM audit "
        "WHERE site_id = ? ORDER BY id", (site_id,))  # fmt: skip
    assert [(r["actor"], r["action"], r["state"]) for r in trail] == [
        ("rev", "repair_state", "confirmed"), ("rev", "repair_state", "scheduled"),
        ("rev", "repair_state", "repaired"), ("rev", "repair_state", "closed"),
        ("system", "reopened", "new"),
    ]  # fmt: skip
    rows = page.locator("#audit tr").count()
    assert rows == 1 + len(trail)  # header + every change, with who and when
    page.screenshot(path=str(tmp_path / "site-ja.png"), full_page=True)
    orders = page.request.get(f"{live.url}/export/work-orders.csv").text()
    assert f"\n{site_id}," not in orders  # reopened: no work order until it is scheduled again


def test_new_findings_appear_without_a_reload(live: LiveOffice, page: Any) -> None:
    _login(page, live, "view")
    _map_ready(page)
    before = int(page.text_content("#count-findings") or "0")
    assert page.is_hidden("#alert")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    live.deliver(findings_at([(3, "D40", 700.0, 30)], seq0=200))
    page.wait_for_selector("#alert:not([hidden])")
    assert page.text_content("#alert") == "新しい緊急の損傷: 1"
    assert page.text_content("#count-findings") == str(before + 1)
    assert page.locator("path.fresh-urgent").count() == 1
    assert page.evaluate("window.__sameDocument") is True
