"""The screen's one message catalogue, Japanese and English.

Every word the driver sees comes from here, so switching language is a re-render and a
missing translation is a test failure rather than an English word on a Japanese screen.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from typing import Final, Literal

from rich.cells import cell_len, set_cell_size

Lang = Literal["ja", "en"]
LANGS: Final[tuple[Lang, ...]] = ("ja", "en")

_EN: Final[dict[str, str]] = {
    "app.title": "roadpatrol",
    "state.recording": "● RECORDING",
    "state.paused": "⏸ PAUSED — not grading · p: resume",
    "state.stopped": "■ NOT RECORDING",
    "header.vehicle": "vehicle",
    "header.since": "since",
    "label.gps": "GPS",
    "label.camera": "Camera",
    "label.model": "Model",
    "label.outbox": "Outbox",
    "label.link": "Link",
    "label.disk": "Disk",
    "gps.fix.0": "no data",
    "gps.fix.1": "no fix",
    "gps.fix.2": "2D fix",
    "gps.fix.3": "3D fix",
    "gps.sats": "{n} sats",
    "gps.hdop": "HDOP {v}",
    "gps.age": "fix {age} ago",
    "gps.never": "never had a fix",
    "gps.bad": "{n} bad sentences",
    "camera.fps": "{fps} fps",
    "camera.dropped": "dropped {n}",
    "camera.lost": "lost",
    "camera.finished": "replay finished",
    "camera.reconnects": "reconnected {n}×",
    "model.none": "no model",
    "model.paused": "paused",
    "model.graded": "{n} graded",
    "model.update.activated": "new model in use: {id}",
    "model.update.installed": "new model installed, not in use: {id}",
    "model.update.already": "new model already installed: {id}",
    "model.update.refused": "new model refused: {id} · {reason}",
    "outbox.pending": "{n} waiting",
    "outbox.oldest": "oldest {age}",
    "outbox.evicted": "{n} photos dropped",
    "outbox.awaiting_receipt": "{n} awaiting office receipt ({age})",
    "link.online": "online",
    "link.offline": "offline",
    "link.offline_since": "offline since {time}",
    "link.disabled": "off (no broker set)",
    "link.acked": "last sent {id}",
    "link.reason.refused": "connection refused",
    "link.reason.not_authorised": "not authorised",
    "link.reason.tls": "TLS failure",
    "link.reason.timeout": "timed out",
    "link.reason.unreachable": "broker unreachable",
    "link.reason.lost": "connection lost",
    "link.reason.config": "certificate/password file missing",
    "link.reason.other": "error",
    "stale.as_of": "last heard from the recorder {age} ago: the values below are not live",
    "stale.never": "nothing heard from the recorder yet",
    "disk.free": "{size} free",
    "disk.unknown": "unknown",
    "counts.total_km": "driven {km}",
    "counts.no_damage": "no damage",
    "findings.title": "Latest findings",
    "findings.time": "Time",
    "findings.grade": "Grade",
    "findings.types": "Damage",
    "findings.since": "Driven since",
    "findings.id": "ID",
    "findings.none": "nothing found yet",
    "grade.0": "None",
    "grade.1": "Watch",
    "grade.2": "Repair",
    "grade.3": "Urgent",
    "grade.manual": "Manual",
    "type.D00": "long. crack",
    "type.D10": "trans. crack",
    "type.D20": "alligator",
    "type.D40": "pothole",
    "button.mark": "M  Mark damage",
    "keys.pause": "p pause",
    "keys.resume": "p resume",
    "keys.lang": "l 日本語",
    "keys.quit": "q leave screen",
    "alert.no_gps_fix": "NO GPS FIX — findings get no position. Check the antenna cable and "
    "that it sees the sky.",
    "alert.camera_lost": "CAMERA LOST — nothing is recorded. Check the camera cable; the "
    "recorder reconnects by itself.",
    "alert.disk_low": "DISK NEARLY FULL — photos are being dropped. Unload the data at the office.",
    "alert.evicting_images": "EVICTING IMAGES to make room — findings are kept, their photos "
    "are not. Unload the data at the office.",
    "alert.model_refused": "MODEL REFUSED — no automatic grading. Call a technician; mark "
    "damage by hand with m.",
    "alert.clock_not_set": "CLOCK NOT SET — times may be wrong. Wait for a GPS fix or set "
    "the clock.",
    "alert.recorder_unreachable": "RECORDER NOT REACHABLE — is `roadpatrol run` running? "
    "Reconnecting…",
    "alert.replay_finished": "DEMO DRIVE FINISHED — the recorded drive was played to its end. "
    "This screen closes in a few seconds; any key closes it now.",
    "alert.office_silent": "THE OFFICE HAS NOT CONFIRMED ANYTHING FOR {age} — findings stay on "
    "the vehicle and are sent again. Tell the office.",
    "alert.privacy_off": "PRIVACY OFF — photos are stored with faces and plates visible "
    "([privacy] enabled = false).",
    "alert.privacy_failed": "PRIVACY FILTER FAILED — findings are recorded without photos. "
    "Call a technician.",
    "alert.unknown": "ALERT {code}",
    "notify.marked": "Marked by hand — will be sent to the office",
    "notify.mark_failed": "Could not store the manual mark",
    "notify.paused": "Grading paused",
    "notify.resumed": "Grading resumed",
    "notify.command_failed": "The recorder did not answer",
    "unit.km_h": "{v} km/h",
    "unit.ms": "{v} ms",
    "unit.s": "{v} s",
    "unit.min": "{v} min",
    "unit.h": "{v} h",
    "unit.m": "{v} m",
    "unit.km": "{v} km",
    "unit.mb": "{v} MB",
    "unit.gb": "{v} GB",
}

_JA: Final[dict[str, str]] = {
    "app.title": "道路パトロール",
    "state.recording": "● 記録中",
    "state.paused": "⏸ 一時停止中 — 判定していません · p で再開",
    "state.stopped": "■ 記録停止",
    "header.vehicle": "車両",
    "header.since": "開始",
    "label.gps": "測位",
    "label.camera": "カメラ",
    "label.model": "モデル",
    "label.outbox": "未送信",
    "label.link": "通信",
    "label.disk": "ディスク",
    "gps.fix.0": "データなし",
    "gps.fix.1": "測位なし",
    "gps.fix.2": "2D測位",
    "gps.fix.3": "3D測位",
    "gps.sats": "衛星{n}",
    "gps.hdop": "HDOP {v}",
    "gps.age": "{age}前",
    "gps.never": "未測位",
    "gps.bad": "異常データ{n}",
    "camera.fps": "{fps}コマ/秒",
    "camera.dropped": "欠落{n}",
    "camera.lost": "接続なし",
    "camera.finished": "再生終了",
    "camera.reconnects": "再接続{n}回",
    "model.none": "モデルなし",
    "model.paused": "停止中",
    "model.graded": "判定{n}枚",
    "model.update.activated": "新モデル使用開始：{id}",
    "model.update.installed": "新モデル導入済・未使用：{id}",
    "model.update.already": "新モデル導入済：{id}",
    "model.update.refused": "新モデル拒否：{id} · {reason}",
    "outbox.pending": "{n}件",
    "outbox.oldest": "最古{age}",
    "outbox.evicted": "写真削除{n}",
    "outbox.awaiting_receipt": "事務所確認待ち{n}件({age})",
    "link.online": "接続中",
    "link.offline": "圏外",
    "link.offline_since": "{time}から圏外",
    "link.disabled": "なし (送信先未設定)",
    "link.acked": "最終送信 {id}",
    "link.reason.refused": "接続拒否",
    "link.reason.not_authorised": "認証失敗",
    "link.reason.tls": "TLS失敗",
    "link.reason.timeout": "応答なし",
    "link.reason.unreachable": "接続先に届きません",
    "link.reason.lost": "切断",
    "link.reason.config": "証明書またはパスワードファイルなし",
    "link.reason.other": "エラー",
    "stale.as_of": "記録装置からの最終受信は{age}前：以下は最新の値ではありません",
    "stale.never": "記録装置からまだ受信していません",
    "disk.free": "空き{size}",
    "disk.unknown": "不明",
    "counts.total_km": "走行{km}",
    "counts.no_damage": "損傷なし",
    "findings.title": "最新の検出",
    "findings.time": "時刻",
    "findings.grade": "判定",
    "findings.types": "損傷",
    "findings.since": "経過距離",
    "findings.id": "番号",
    "findings.none": "まだ検出なし",
    "grade.0": "損傷なし",
    "grade.1": "経過観察",
    "grade.2": "要補修",
    "grade.3": "緊急",
    "grade.manual": "手動",
    "type.D00": "縦ひび",
    "type.D10": "横ひび",
    "type.D20": "亀甲ひび",
    "type.D40": "ポットホール",
    "button.mark": "M  手動で記録",
    "keys.pause": "p 一時停止",
    "keys.resume": "p 再開",
    "keys.lang": "l English",
    "keys.quit": "q 画面を閉じる",
    "alert.no_gps_fix": "GPS測位なし：位置が記録されません。アンテナの接続と上空の見通しを"
    "確認してください",
    "alert.camera_lost": "カメラ接続なし：記録できません。ケーブルを確認してください"
    "(自動で再接続します)",
    "alert.disk_low": "ディスク残量わずか：写真を間引いています。帰庁してデータを降ろしてください",
    "alert.evicting_images": "空き容量確保のため写真を削除中：記録は残ります。帰庁してデータを"
    "降ろしてください",
    "alert.model_refused": "モデル読込不可：自動判定できません。技術担当に連絡し、損傷はmで"
    "手動記録してください",
    "alert.clock_not_set": "時計未設定：時刻が不正確です。GPS測位を待つか時計を合わせてください",
    "alert.recorder_unreachable": "記録装置に接続できません：roadpatrol runが動いているか確認"
    "してください(再接続中)",
    "alert.replay_finished": "デモ走行終了：記録された走行を最後まで再生しました。"
    "数秒後にこの画面を閉じます（何かキーを押すとすぐ閉じます）",
    "alert.office_silent": "事務所から{age}受信確認がありません：データは車両に残り、再送します。"
    "事務所に連絡してください",
    "alert.privacy_off": "プライバシー保護オフ：顔とナンバーがぼかされずに保存されます"
    "([privacy] enabled = false)",
    "alert.privacy_failed": "プライバシー処理不可：写真なしで記録しています。技術担当に連絡して"
    "ください",
    "alert.unknown": "警告 {code}",
    "notify.marked": "手動で記録しました — 事務所に送信されます",
    "notify.mark_failed": "手動記録を保存できませんでした",
    "notify.paused": "判定を一時停止しました",
    "notify.resumed": "判定を再開しました",
    "notify.command_failed": "記録装置が応答しません",
    "unit.km_h": "{v}km/h",
    "unit.ms": "{v}ms",
    "unit.s": "{v}秒",
    "unit.min": "{v}分",
    "unit.h": "{v}時間",
    "unit.m": "{v}m",
    "unit.km": "{v}km",
    "unit.mb": "{v}MB",
    "unit.gb": "{v}GB",
}

CATALOGUE: Final[Mapping[Lang, Mapping[str, str]]] = {"en": _EN, "ja": _JA}


class Messages:
    """The catalogue in one language: ``msgs("gps.sats", n=9)``."""

    def __init__(self, lang: Lang) -> None:
        self.lang: Lang = lang
        self._table = CATALOGUE[lang]

    def __call__(self, key: str, **params: object) -> str:
        text = self._table[key]
        return text.format(**params) if params else text

    def grade_name(self, grade: int, origin: str = "model") -> str:
        if origin == "manual":
            return self("grade.manual")
        return self(f"grade.{grade}") if f"grade.{grade}" in self._table else str(grade)

    def type_name(self, code: str) -> str:
        key = f"type.{code}"
        return self(key) if key in self._table else code

    def alert(self, code: str, **params: object) -> str:
        """The alert's words; ``params`` fill the few that name a figure (an age)."""
        key = f"alert.{code}"
        if key not in self._table:
            return self("alert.unknown", code=code)
        needed = {name for _, name, _, _ in string.Formatter().parse(self._table[key]) if name}
        return self(key, **{k: v for k, v in params.items() if k in needed})


def parse_lang(value: str) -> Lang:
    """``ja``/``en`` (any case, a locale like ``ja_JP.UTF-8`` too); ValueError otherwise."""
    head = value.strip().lower().replace("-", "_").split("_")[0].split(".")[0]
    for lang in LANGS:
        if head == lang:
            return lang
    raise ValueError(f"unknown language {value!r}: expected one of {', '.join(LANGS)}")


def lang_from_environment(environ: Mapping[str, str] | None = None) -> Lang:
    """Japanese when the messages locale is Japanese, English otherwise (POSIX precedence)."""
    env = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def resolve_lang(requested: str | None, environ: Mapping[str, str] | None = None) -> Lang:
    """An explicit ``--lang``/config choice wins; ``None`` or ``auto`` follow the locale."""
    if requested is None or requested.strip().lower() == "auto":
        return lang_from_environment(environ)
    return parse_lang(requested)


def pad_cells(text: str, width: int, align: Literal["left", "right"] = "left") -> str:
    """Pad or cut ``text`` to exactly ``width`` terminal cells (a kanji takes two)."""
    if cell_len(text) > width:
        return set_cell_size(text, width)
    gap = " " * (width - cell_len(text))
    return text + gap if align == "left" else gap + text
