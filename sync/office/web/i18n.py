"""The console's labels in Japanese and English; the page follows the browser's language
(Accept-Language) unless the user switched with ``?lang=ja|en`` (kept in the session)."""

from __future__ import annotations

from starlette.requests import Request

LANGS = ("ja", "en")

LABELS: dict[str, dict[str, str]] = {
    "title": {"ja": "道路損傷マップ", "en": "Road damage map"},
    "login": {"ja": "ログイン", "en": "Log in"},
    "logout": {"ja": "ログアウト", "en": "Log out"},
    "username": {"ja": "ユーザー名", "en": "User name"},
    "password": {"ja": "パスワード", "en": "Password"},
    "login_failed": {"ja": "ユーザー名またはパスワードが違います",
                     "en": "Wrong user name or password"},
    "login_locked": {"ja": "試行回数が多すぎます。しばらく待ってください",
                     "en": "Too many attempts; wait a while"},
    "map": {"ja": "地図", "en": "Map"},
    "queue": {"ja": "確認待ち", "en": "Review queue"},
    "work_orders": {"ja": "作業指示", "en": "Work orders"},
    "grade": {"ja": "等級", "en": "Grade"},
    "grade_3": {"ja": "緊急", "en": "Urgent"},
    "grade_2": {"ja": "要補修", "en": "Repair needed"},
    "grade_1": {"ja": "経過観察", "en": "Watch"},
    "grade_0": {"ja": "損傷なし", "en": "No damage"},
    "type": {"ja": "種類", "en": "Type"},
    "D00": {"ja": "縦ひび割れ", "en": "Longitudinal crack"},
    "D10": {"ja": "横ひび割れ", "en": "Transverse crack"},
    "D20": {"ja": "亀甲状ひび割れ", "en": "Alligator crack"},
    "D40": {"ja": "ポットホール", "en": "Pothole"},
    "manual": {"ja": "手動記録", "en": "Marked by crew"},
    "review_state": {"ja": "確認状態", "en": "Review state"},
    "review": {"ja": "確認", "en": "Review"},
    "unreviewed": {"ja": "未確認", "en": "Unreviewed"},
    "confirmed": {"ja": "確認済み", "en": "Confirmed"},
    "corrected": {"ja": "修正済み", "en": "Corrected"},
    "not_damage": {"ja": "損傷ではない", "en": "Not damage"},
    "repair_state": {"ja": "補修状況", "en": "Repair state"},
    "new": {"ja": "新規", "en": "New"},
    "scheduled": {"ja": "補修予定", "en": "Scheduled"},
    "repaired": {"ja": "補修済み", "en": "Repaired"},
    "closed": {"ja": "完了", "en": "Closed"},
    "reopened": {"ja": "再発見により再開", "en": "Reopened by a new sighting"},
    "date_from": {"ja": "開始日", "en": "From"},
    "date_to": {"ja": "終了日", "en": "To"},
    "vehicle": {"ja": "車両", "en": "Vehicle"},
    "model": {"ja": "モデル", "en": "Model"},
    "min_score": {"ja": "最低スコア", "en": "Minimum score"},
    "apply": {"ja": "絞り込み", "en": "Filter"},
    "clear": {"ja": "解除", "en": "Clear"},
    "all": {"ja": "すべて", "en": "All"},
    "findings": {"ja": "検出", "en": "Findings"},
    "sites": {"ja": "損傷箇所", "en": "Damage sites"},
    "tracks": {"ja": "巡回経路", "en": "Patrol tracks"},
    "coverage": {"ja": "巡回距離", "en": "Distance patrolled"},
    "road_share": {"ja": "道路延長に対する巡回率", "en": "Share of the road length driven"},
    "score": {"ja": "スコア", "en": "Score"},
    "captured": {"ja": "撮影日時", "en": "Captured"},
    "position": {"ja": "位置", "en": "Position"},
    "other_sightings": {"ja": "同じ箇所の他の検出", "en": "Other sightings of this site"},
    "confirm": {"ja": "確認 (c)", "en": "Confirm (c)"},
    "correct": {"ja": "修正", "en": "Correct"},
    "dismiss": {"ja": "損傷ではない (x)", "en": "Not damage (x)"},
    "note": {"ja": "メモ", "en": "Note"},
    "next": {"ja": "次へ (j)", "en": "Next (j)"},
    "previous": {"ja": "前へ (k)", "en": "Previous (k)"},
    "shortcuts": {"ja": "キー: j/k 次/前、1/2/3 等級、c 確認、x 損傷ではない",
                  "en": "Keys: j/k next/previous, 1/2/3 grade, c confirm, x not damage"},
    "queue_empty": {"ja": "確認待ちはありません", "en": "Nothing waits for review"},
    "saved": {"ja": "保存しました", "en": "Saved"},
    "open_site": {"ja": "箇所を開く", "en": "Open site"},
    "site": {"ja": "損傷箇所", "en": "Damage site"},
    "sightings": {"ja": "検出回数", "en": "Sightings"},
    "first_seen": {"ja": "初回", "en": "First seen"},
    "last_seen": {"ja": "最終", "en": "Last seen"},
    "assignee": {"ja": "担当", "en": "Assigned to"},
    "due_date": {"ja": "期限", "en": "Due"},
    "repaired_on": {"ja": "補修日", "en": "Repaired on"},
    "repaired_by": {"ja": "補修者", "en": "Repaired by"},
    "set_state": {"ja": "状況を更新", "en": "Update state"},
    "audit": {"ja": "履歴", "en": "History"},
    "who": {"ja": "担当者", "en": "By"},
    "when": {"ja": "日時", "en": "When"},
    "what": {"ja": "内容", "en": "What"},
    "new_urgent": {"ja": "新しい緊急の損傷", "en": "New urgent damage"},
    "export": {"ja": "出力", "en": "Export"},
    "no_position": {"ja": "位置不明", "en": "No position"},
    "language": {"ja": "English", "en": "日本語"},
}


def choose_lang(request: Request) -> str:
    """``?lang=`` (remembered in the session), else the session's, else the browser's."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        request.session["lang"] = asked
        return asked
    kept = request.session.get("lang")
    if kept in LANGS:
        return str(kept)
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return "ja"


def labels(lang: str) -> dict[str, str]:
    return {key: texts[lang] for key, texts in LABELS.items()}
