"""`roadpatrol office serve`: accounts, sessions and the API against a live office (findings
delivered over a real mosquitto by the real publisher), as an attacker would try it. Every test
runs on both office stores: SQLite and PostgreSQL + PostGIS (``--db postgresql://...``)."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.console import (
    PASSWORDS,
    LiveOffice,
    csrf_from,
    findings_at,
    live_office,
    login,
    roadpatrol,
)
from support.pg import new_database

# one console shared by the module (its tests build on each other's reviews), 7-9 s to start
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveOffice]:
    """The live office on each store in turn (the console opens the same ``--db``)."""
    db = None if request.param == "sqlite" else new_database(request.getfixturevalue("pg_cluster"))
    yield from live_office(tmp_path_factory.mktemp("console"), db)


def test_healthz_needs_no_login_and_everything_else_does(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"ok": True}
    for path in ("/", "/queue", "/sites/1", "/export/sites.csv"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    for path in ("/api/findings", "/api/sites", "/api/tracks"):
        assert client.get(path).status_code == 401, path
    image = client.get("/images/00000000-0000-0000-0000-000000000000.jpg")
    assert image.status_code == 303 and image.headers["location"].startswith("/login")


def test_login_form_has_the_fields_and_a_token(client: httpx.Client) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="username"' in page.text and 'name="password"' in page.text
    assert f'name="csrf_token" value="{csrf_from(page.text)}"' in page.text
    # A login post without the token is refused even with the right password.
    r = client.post("/login", data={"username": "view", "password": PASSWORDS["view"]})
    assert r.status_code == 403
    assert client.get("/api/findings").status_code == 401


def test_api_findings_match_office_export(live: LiveOffice, client: httpx.Client) -> None:
    assert login(client, "view").status_code == 303
    doc = client.get("/api/findings").json()
    done = roadpatrol("office", "export", "--db", str(live.db), "--format", "geojson")
    assert done.returncode == 0, done.stderr
    exported = {f["properties"]["id"]: f for f in json.loads(done.stdout)["features"]}
    served = {f["properties"]["id"]: f for f in doc["features"]}
    assert served.keys() >= {f.id for f in live.findings}
    for fid, feature in exported.items():
        assert served[fid]["properties"] == feature["properties"]
        assert served[fid]["geometry"] == feature["geometry"]
    urgent = client.get("/api/findings", params={"grade": "3"}).json()["features"]
    assert {f["properties"]["id"] for f in urgent} == {f.id for f in live.findings
                                                       if f.grade == 3}  # fmt: skip
    assert client.get("/api/findings", params={"grade": "9"}).status_code == 400
    north = client.get("/api/findings", params={"bbox": "140.0,35.6090,140.2,35.7"}).json()
    assert {f["properties"]["id"] for f in north["features"]} <= {f.id for f in live.findings[2:]}


def test_api_sites_match_office_export_sites(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "view")
    doc = client.get("/api/sites").json()
    done = roadpatrol("office", "export", "--db", str(live.db), "--format", "geojson", "--sites")
    features = json.loads(done.stdout)["features"]
    exported = {f["properties"]["site_id"]: f["properties"] for f in features}
    served = {f["properties"]["site_id"]: f["properties"] for f in doc["features"]}
    assert served.keys() == exported.keys()
    for site_id, props in exported.items():
        assert {k: served[site_id][k] for k in props} == props
        assert served[site_id]["repair_state"] in ("new", "confirmed", "scheduled", "repaired",
                                                   "closed")  # fmt: skip


def test_a_viewer_cannot_review(live: LiveOffice, client: httpx.Client) -> None:
    page = login(client, "view")
    token = csrf_from(client.get(page.headers["location"]).text)
    r = client.post("/api/reviews", headers={"X-CSRF-Token": token},
                    json={"finding_id": live.findings[2].id, "verdict": "confirmed"})  # fmt: skip
    assert r.status_code == 403
    assert live.office.store.query(
        "SELECT 1 FROM reviews WHERE finding_id = ?", (live.findings[2].id,)
    ) == []


def test_a_write_without_the_csrf_token_is_refused(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "rev")
    fid = live.findings[4].id
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        r = client.post("/api/reviews", headers=headers, json={"finding_id": fid,
                                                               "verdict": "confirmed"})  # fmt: skip
        assert r.status_code == 403
    r = client.post("/api/sites/1/repair", json={"state": "confirmed"})
    assert r.status_code == 403
    assert live.office.store.query("SELECT 1 FROM reviews WHERE finding_id = ?", (fid,)) == []


def test_a_review_through_the_api_is_the_cli_review(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "rev")
    token = csrf_from(client.get("/").text)
    fid = live.findings[1].id  # a D20 crack, grade 2: corrected to a pothole
    r = client.post("/api/reviews", headers={"X-CSRF-Token": token},
                    json={"finding_id": fid, "verdict": "corrected", "grade": 3,
                          "type_codes": ["D40"], "note": "deep"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["office_grade"] == 3 and r.json()["reviewer"] == "rev"
    done = roadpatrol("office", "review", "--db", str(live.db), "--list", "--json")
    row = next(x for x in json.loads(done.stdout) if x["id"] == fid)
    assert (row["review_verdict"], row["office_grade"], row["reviewed_by"]) == ("corrected", 3,
                                                                                 "rev")  # fmt: skip
    # The correction moved the finding to a D40 site, as `office review` does.
    site_types = live.office.store.query(
        "SELECT s.type_code FROM site_findings sf JOIN sites s ON s.id = sf.site_id "
        "WHERE sf.finding_id = ?", (fid,))  # fmt: skip
    assert [r["type_code"] for r in site_types] == ["D40"]
    bad = client.post("/api/reviews", headers={"X-CSRF-Token": token},
                      json={"finding_id": fid, "verdict": "corrected", "grade": 7})  # fmt: skip
    assert bad.status_code == 400 and "grade" in bad.json()["error"]
    missing = client.post("/api/reviews", headers={"X-CSRF-Token": token},
                          json={"finding_id": "nope", "verdict": "confirmed"})  # fmt: skip
    assert missing.status_code == 404


def test_five_wrong_passwords_lock_the_name(live: LiveOffice, client: httpx.Client) -> None:
    done = roadpatrol("office", "user", "add", "target", "--role", "admin", "--db", str(live.db),
                      stdin="target-pass-1\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    for _ in range(4):
        assert login(client, "target", "wrong-password").status_code == 401
    assert login(client, "target", "target-pass-1").status_code == 303  # four: still let in
    client.cookies.clear()
    for _ in range(5):
        assert login(client, "target", "wrong-password").status_code == 401
    # Now even the right password is not checked: the name waits out the lockout.
    locked = login(client, "target", "target-pass-1")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert client.get("/api/findings").status_code == 401
    # Another name is not locked by it.
    assert login(client, "view").status_code == 303


@pytest.mark.parametrize("name", [
    "..%2F..%2Foffice.sqlite3", "..%2Fchiba-07%2Fx.jpg", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....jpg", "00000000-0000-0000-0000-000000000000.jpg",
])  # fmt: skip
def test_image_ids_are_validated(live: LiveOffice, client: httpx.Client, name: str) -> None:
    login(client, "view")
    assert client.get(f"/images/{name}").status_code == 404
    # httpx normalises '..' away: the server sees /office/office.sqlite3, which is no route.
    assert client.get("/images/../../office/office.sqlite3").status_code == 404


def test_images_are_served_for_known_findings(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "view")
    r = client.get(f"/images/{live.findings[0].id}.jpg")
    assert r.status_code == 200 and r.content.startswith(b"\xff\xd8\xff")
    assert r.headers["content-type"] == "image/jpeg"


def test_a_disabled_account_loses_its_session(live: LiveOffice, client: httpx.Client) -> None:
    done = roadpatrol("office", "user", "add", "temp", "--role", "viewer", "--db", str(live.db),
                      stdin="temp-pass-123\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert login(client, "temp", "temp-pass-123").status_code == 303
    assert client.get("/api/sites").status_code == 200
    assert roadpatrol("office", "user", "disable", "temp", "--db", str(live.db)).returncode == 0
    assert client.get("/api/sites").status_code == 401
    listed = json.loads(roadpatrol("office", "user", "list", "--db", str(live.db), "--json").stdout)
    assert {"name": "temp", "role": "viewer", "disabled": True} in [
        {k: u[k] for k in ("name", "role", "disabled")} for u in listed
    ]


def test_tracks_and_coverage_of_the_road_network(client: httpx.Client) -> None:
    login(client, "view")
    doc = client.get("/api/tracks").json()
    lines = [f for f in doc["features"] if f["properties"]["vehicle_id"] == "chiba-07"]
    assert len(lines) == 1 and len(lines[0]["geometry"]["coordinates"]) == 61
    assert doc["coverage"]["driven_km"] == pytest.approx(0.6, abs=0.01)
    assert doc["coverage"]["road_km"] == pytest.approx(1.2, abs=0.01)
    assert doc["coverage"]["road_share"] == pytest.approx(0.5, abs=0.02)
    # Another day: nothing driven.
    other = client.get("/api/tracks", params={"from": "2024-06-01"}).json()
    assert other["features"] == [] and other["coverage"]["driven_km"] == 0


def test_repair_steps_out_of_order_are_refused(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "rev")
    token = {"X-CSRF-Token": csrf_from(client.get("/").text)}
    site_id = live.office.store.query(
        "SELECT site_id FROM site_findings WHERE finding_id = ?", (live.findings[2].id,)
    )[0]["site_id"]
    url = f"/api/sites/{site_id}/repair"
    skipped = client.post(url, headers=token, json={"state": "repaired"})
    assert skipped.status_code == 409 and "can go to confirmed" in skipped.json()["error"]
    assert client.post(url, headers=token, json={"state": "confirmed"}).status_code == 200
    no_crew = client.post(url, headers=token, json={"state": "scheduled", "due_date": "2024-06-01"})
    assert no_crew.status_code == 409 and "assignee" in no_crew.json()["error"]
    bad_date = client.post(url, headers=token, json={"state": "scheduled", "assignee": "crew",
                                                     "due_date": "soon"})  # fmt: skip
    assert bad_date.status_code == 409 and "due_date" in bad_date.json()["error"]
    state = client.get("/api/sites").json()["features"]
    assert {f["properties"]["site_id"]: f["properties"]["repair_state"] for f in state}[
        site_id
    ] == "confirmed"
    assert client.post("/api/sites/99999/repair", headers=token,
                       json={"state": "confirmed"}).status_code == 404  # fmt: skip


def test_login_never_redirects_off_site(client: httpx.Client) -> None:
    page = client.get("/login")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        form = {"username": "view", "password": PASSWORDS["view"],
                "csrf_token": csrf_from(page.text), "next": target}  # fmt: skip
        r = client.post("/login", data=form)
        assert r.status_code == 303 and r.headers["location"] == "/"
        page = client.get("/login")


def test_serve_and_user_misuse_get_one_line_reasons(live: LiveOffice, tmp_path: Path) -> None:
    bad = tmp_path / "console.toml"
    bad.write_text('[map]\ntiles_url = ""\nzoom_level = 3\n')
    done = roadpatrol("office", "serve", "--db", str(live.db), "--images", str(tmp_path),
                      "--config", str(bad))  # fmt: skip
    assert done.returncode == 1 and "line 3: map.zoom_level: unknown key" in done.stderr
    assert "Traceback" not in done.stderr
    done = roadpatrol("office", "serve", "--db", str(tmp_path / "none.sqlite3"), "--images",
                      str(tmp_path))  # fmt: skip
    assert done.returncode == 1 and "no such file" in done.stderr
    assert not (tmp_path / "none.sqlite3").exists()
    done = roadpatrol("office", "user", "list", "--db", f"sqlite:{tmp_path / 'none.sqlite3'}")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "no such file" in done.stderr
    assert not (tmp_path / "none.sqlite3").exists()
    down = f"postgresql://postgres@/office?host={tmp_path}&port=1"  # no server on that socket
    done = roadpatrol("office", "user", "list", "--db", down)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "roadpatrol office user list: office database postgresql://" in done.stderr
    assert "Traceback" not in done.stderr
    listed = roadpatrol("office", "user", "list", "--db", live.db, "--json")
    assert {u["name"] for u in json.loads(listed.stdout)} >= set(PASSWORDS)
    short = roadpatrol("office", "user", "add", "x1", "--role", "admin", "--db", str(live.db),
                       stdin="short\n")  # fmt: skip
    assert short.returncode == 2 and "at least 8" in short.stderr
    again = roadpatrol("office", "user", "add", "view", "--role", "admin", "--db", str(live.db),
                       stdin="another-pass-1\n")  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr
    bad_role = roadpatrol("office", "user", "add", "x2", "--role", "root", "--db", str(live.db))
    assert bad_role.returncode == 2


def test_clusters_carry_the_office_grade(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "view")
    findings = client.get("/api/findings").json()["features"]
    placed = [f["properties"] for f in findings if f["geometry"]]
    whole = {"cell_deg": "1", "bbox": "139,35,141,36"}
    for params in ({}, {"grade": "1,2"}, {"state": "unreviewed"}, {"vehicle": "chiba-07"}):
        want = [p for p in placed if (
            ("grade" not in params or str(p["office_grade"]) in params["grade"].split(","))
            and ("state" not in params or p["review_verdict"] is None))]  # fmt: skip
        doc = client.get("/api/clusters", params={**whole, **params}).json()
        assert doc["total"] == len(want), params
        assert [c["max_grade"] for c in doc["clusters"]] == [max(p["office_grade"] for p in want)]
    # The reviews of the other tests moved office grades away from the vehicle's: a cluster
    # over a reviewed finding alone takes its office grade.
    reviewed = [p for p in placed if p["review_verdict"] in ("corrected", "not_damage")]
    assert reviewed, "no corrected finding to check against"
    for p in reviewed:
        f = next(x for x in findings if x["properties"]["id"] == p["id"])
        lon, lat = f["geometry"]["coordinates"]
        box = f"{lon - 1e-6},{lat - 1e-6},{lon + 1e-6},{lat + 1e-6}"
        doc = client.get("/api/clusters", params={"cell_deg": "1", "bbox": box}).json()
        assert [c["max_grade"] for c in doc["clusters"]] == [p["office_grade"]]


def test_only_an_admin_manages_accounts(live: LiveOffice, client: httpx.Client) -> None:
    done = roadpatrol("office", "user", "add", "temp2", "--role", "viewer", "--db", str(live.db),
                      stdin="temp2-pass-123\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    login(client, "rev")
    assert client.get("/admin/users").status_code == 403
    token = csrf_from(client.get("/").text)
    r = client.post("/admin/users/temp2/disabled", data={"csrf_token": token, "disabled": "1"})
    assert r.status_code == 403
    with httpx.Client(base_url=live.url, timeout=20) as admin:
        assert login(admin, "admin").status_code == 303
        page = admin.get("/admin/users")
        assert page.status_code == 200 and "temp2" in page.text
        r = admin.post("/admin/users/temp2/disabled", data={"disabled": "1"})
        assert r.status_code == 403  # no token
        r = admin.post("/admin/users/temp2/disabled",
                       data={"csrf_token": csrf_from(page.text), "disabled": "1"})  # fmt: skip
        assert r.status_code == 303
    assert login(client, "temp2", "temp2-pass-123").status_code == 401
    trail = live.office.store.query(
        "SELECT actor, action FROM audit WHERE action LIKE ? AND detail LIKE ? ORDER BY id",
        ("user_%", "%temp2%"),
    )
    assert [(r["actor"], r["action"]) for r in trail] == [("cli", "user_added"),
                                                          ("admin", "user_disabled")]  # fmt: skip


def test_a_raw_dot_dot_path_is_not_served(live: LiveOffice) -> None:
    """A client that sends '..' unnormalised (curl --path-as-is, a hand-made request)."""
    host, port = live.url.removeprefix("http://").split(":")
    for target in ("/images/../office/office.sqlite3", "/images/..%2f..%2fserve.log",
                   "/static/console/../../../../office/office.sqlite3"):  # fmt: skip
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = answer.split(b"\r\n", 1)[0]
        assert b" 404 " in status or b" 303 " in status or b" 400 " in status, (target, status)
        assert b"SQLite format" not in answer and b"Uvicorn running" not in answer, target


def test_staff_text_is_escaped_on_the_pages(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "rev")
    token = {"X-CSRF-Token": csrf_from(client.get("/").text)}
    fid = live.findings[3].id
    note = "<script>alert(1)</script>"
    r = client.post("/api/reviews", headers=token, json={"finding_id": fid, "verdict": "confirmed",
                                                         "note": note})  # fmt: skip
    assert r.status_code == 200
    site_id = live.office.store.query(
        "SELECT site_id FROM site_findings WHERE finding_id = ?", (fid,)
    )[0]["site_id"]
    page = client.get(f"/sites/{site_id}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and note not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_csv_exports_match_office_export(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "view")
    for path, extra in (("/export/sites.csv", ["--sites"]), ("/export/findings.csv", [])):
        served = client.get(path)
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/csv")
        done = roadpatrol("office", "export", "--db", str(live.db), "--format", "csv", *extra)
        assert done.returncode == 0, done.stderr
        assert served.text == done.stdout, path
    urgent = client.get("/export/findings.csv", params={"grade": "3"}).text.splitlines()
    everything = client.get("/export/findings.csv").text.splitlines()
    assert urgent[0] == everything[0] and 1 < len(urgent) < len(everything)
    assert client.get("/export/passwords.csv").status_code == 404


def test_every_filter_selects_what_it_names(live: LiveOffice, client: httpx.Client) -> None:
    login(client, "view")

    def ids(**params: str) -> set[str]:
        r = client.get("/api/findings", params=params)
        assert r.status_code == 200, r.text
        return {f["properties"]["id"] for f in r.json()["features"]}

    mine = {f.id: f for f in live.findings}
    by_type = {f.id for f in live.findings if f.damages[0].type_code == "D20"}
    # findings[1] was corrected to D40 by an earlier test: the office's types count.
    rows = live.office.store.query(
        "SELECT finding_id FROM reviews WHERE verdict = 'corrected' AND type_codes = 'D40'"
    )
    corrected = {r["finding_id"] for r in rows}
    assert ids(type="D20") & mine.keys() == by_type - corrected
    assert ids(type="D20,D10") & mine.keys() >= {f.id for f in live.findings
                                                 if f.damages[0].type_code == "D10"}  # fmt: skip
    reviewed = {r["finding_id"] for r in live.office.store.query("SELECT finding_id FROM reviews")}
    assert ids(state="unreviewed") & reviewed == set()
    assert ids(state="confirmed,corrected,not_damage") == reviewed
    assert ids(vehicle="chiba-07") >= mine.keys() and ids(vehicle="other-car") == set()
    assert ids(model=live.findings[0].model_id) >= mine.keys() and ids(model="none-0") == set()
    # Captured 2024-05-01 08:00-08:06 UTC: the day selects them, the day after does not.
    assert ids(**{"from": "2024-05-01", "to": "2024-05-01"}) >= mine.keys()
    assert ids(**{"from": "2024-05-02"}) & mine.keys() == set()
    assert ids(min_score="0.99") == set()
    scores = {f.id: max(d.score for d in f.damages) for f in live.findings}
    low = min(scores.values())
    assert ids(min_score=str(low)) >= {i for i, s in scores.items() if s >= low}
    assert ids(repair="new") >= mine.keys() - {live.findings[2].id}  # one site was confirmed
    assert live.findings[2].id in ids(repair="confirmed")
    for bad in ({"type": "D99"}, {"state": "lost"}, {"repair": "done"}, {"from": "May"},
                {"min_score": "high"}, {"bbox": "1,2,3"}, {"vehicle": "../x"}):  # fmt: skip
        r = client.get("/api/findings", params=bad)
        assert r.status_code == 400 and next(iter(bad)) in r.json()["error"], bad


def test_pages_follow_the_browsers_language_until_switched(client: httpx.Client) -> None:
    assert "ログイン" in client.get("/login", headers={"Accept-Language": "ja,en;q=0.5"}).text
    english = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
    assert "Log in" in english and "ログイン" not in english
    # Switched: the choice is kept in the session over the browser's language.
    client.get("/login?lang=ja", headers={"Accept-Language": "en"})
    assert "ログイン" in client.get("/login", headers={"Accept-Language": "en"}).text


def test_a_repair_walk_and_a_new_sighting_reopen_the_site(
    live: LiveOffice, client: httpx.Client
) -> None:
    """Every state of a repair through the API, stored in the office's database (either
    store), then a re-sighting after the repair reopens the site."""
    login(client, "rev")
    token = {"X-CSRF-Token": csrf_from(client.get("/").text)}
    site_id = live.office.store.query(
        "SELECT site_id FROM site_findings WHERE finding_id = ?", (live.findings[5].id,)
    )[0]["site_id"]
    steps = [
        {"state": "confirmed"},
        {"state": "scheduled", "assignee": "Road crew 3", "due_date": "2024-05-10"},
        {"state": "repaired", "repaired_on": "2024-05-02", "repaired_by": "Road crew 3",
         "note": "patched"},
        {"state": "closed"},
    ]  # fmt: skip
    for step in steps:
        r = client.post(f"/api/sites/{site_id}/repair", headers=token, json=step)
        assert r.status_code == 200, r.text
        stored = live.office.store.query(
            "SELECT state FROM repair_states WHERE site_id = ?", (site_id,)
        )
        assert [row["state"] for row in stored] == [step["state"]]  # one row, replaced
    orders = client.get("/export/work-orders.csv").text
    assert f"\n{site_id},D20," in orders and ",closed,Road crew 3,2024-05-10," in orders

    again = findings_at([(2, "D20", 500.0, 2 * 24 * 60)], seq0=100)  # two days after the repair
    live.deliver(again)
    served = {f["properties"]["site_id"]: f["properties"]
              for f in client.get("/api/sites").json()["features"]}  # fmt: skip
    assert served[site_id]["repair_state"] == "new"
    trail = live.office.store.query(
        "SELECT actor, action, detail FROM audit WHERE site_id = ? ORDER BY id", (site_id,)
    )
    assert [(r["actor"], r["action"], json.loads(r["detail"]).get("state")) for r in trail] == [
        ("rev", "repair_state", "confirmed"), ("rev", "repair_state", "scheduled"),
        ("rev", "repair_state", "repaired"), ("rev", "repair_state", "closed"),
        ("system", "reopened", "new"),
    ]  # fmt: skip
    page = client.get(f"/sites/{site_id}").text
    assert again[0].id in page and "Road crew 3" in page
    assert f"\n{site_id}," not in client.get("/export/work-orders.csv").text


def test_the_finest_clusters_are_one_finding_each(live: LiveOffice, client: httpx.Client) -> None:
    """At the smallest cell (1e-5 degrees) the grid key runs past 32 bits: PostgreSQL must not
    overflow, and cells are cut as on SQLite (truncated, not rounded)."""
    login(client, "view")
    doc = client.get("/api/clusters", params={"cell_deg": "0.00001"})
    assert doc.status_code == 200, doc.text
    clusters = doc.json()["clusters"]
    lats = [f["geometry"]["coordinates"][1]
            for f in client.get("/api/findings").json()["features"]]  # fmt: skip
    assert len(clusters) == len(set(lats))  # findings 100 m apart on one meridian
    # Cells of 0.001 degrees (about 111 m): SQLite's CAST truncates, PostgreSQL must cut alike.
    cell = 0.001
    doc = client.get("/api/clusters", params={"cell_deg": str(cell)}).json()["clusters"]
    assert {int(c["lat_deg"] / cell): c["n"] for c in doc} == Counter(int(lat / cell)
                                                                      for lat in lats)
