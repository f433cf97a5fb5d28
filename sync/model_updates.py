"""The vehicle's side of `office push-model`: receive, verify, install, activate, report.

Started beside the recorder by edge.app, with its own MQTT client (the publisher's session and
its in-flight window stay untouched). The package is checked exactly as `roadpatrol model
install` checks it. Whether it becomes active is the signed manifest's ``activate_on_arrival``;
the message's unsigned ``activate`` flag can only hold that back (`push-model --no-activate`).
Which package it is comes from the signed manifest alone (edge.model_store.pushed); a version
older than the newest of its name installed here is refused (only a technician's local
`model install --allow-downgrade` can go back), and a message over ``mqtt.model_push_max_mb``
or off its schema is refused before anything is written. No message, however broken, stops
this client. A refused package changes nothing (recording and the model in use go on) and its
reason goes to the recorder's model status (so to the vehicle's retained status message) and to the
retained ``<prefix>/<vehicle-id>/model/result`` topic.

An activated package is reported active only once the running recorder grades with it: one
that passed every install check and still fails to load there (the recorder keeps its
previous model, edge.model_store.active) is reported installed, not active, with the reason.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from edge.config.mqtt import MqttConfig
from edge.grading.manifest import ModelPackageError
from edge.model_store import ModelStore
from edge.model_store.pushed import unpack
from edge.status import ModelUpdateResult
from edge.wire.topics import FLEET, Topics, model_topic
from edge.wire.validate import MODEL_RESULT, schema_errors, schema_tag
from sync.mqtt_client import make_client

if TYPE_CHECKING:
    from edge.recording.recorder import Recorder

log = logging.getLogger(__name__)


class ModelUpdates:
    def __init__(self, recorder: Recorder, cfg: MqttConfig):
        self.recorder = recorder
        self.cfg = cfg
        self.vehicle_id = recorder.config.vehicle.vehicle_id
        self.store = ModelStore.from_config(recorder.config)
        mine = Topics(cfg.topic_prefix, self.vehicle_id)
        self.topics = (mine.model, model_topic(cfg.topic_prefix, None))
        self.result_topic = mine.model_result
        self.last_result: dict[str, Any] | None = None
        self.handled = threading.Event()  # set after each push is handled (tests wait on it)
        client_id = f"{cfg.effective_client_id(self.vehicle_id)}-models"
        self._client = make_client(cfg, client_id, clean_start=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def start(self) -> ModelUpdates:
        # connect_async + loop_start: no network at start is normal; paho keeps retrying.
        self._client.reconnect_delay_set(
            max(1, int(self.cfg.reconnect_min_s)), max(1, int(self.cfg.reconnect_max_s))
        )
        if self._client.protocol == mqtt.MQTTv5:
            self._client.connect_async(
                self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=True
            )
        else:
            self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, _: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:  # a cleared retained message
            return
        try:
            result = self.handle(bytes(msg.payload), fleet=msg.topic.split("/")[-2] == FLEET)
            client.publish(self.result_topic, json.dumps(result), qos=1, retain=True)
        except Exception:
            # paho runs this on its network thread: an escape would end model updates until
            # a restart. handle() reports every expected refusal; this is the unexpected.
            log.exception("pushed model on %s: handling failed; next push goes on", msg.topic)
        finally:
            self.handled.set()

    def handle(self, payload: bytes, *, fleet: bool = False) -> dict[str, Any]:
        """Verify and install one pushed package; the result as reported to the office."""
        model_id = None
        max_bytes = int(self.cfg.model_push_max_mb * 1024 * 1024)
        try:
            with tempfile.TemporaryDirectory(prefix="roadpatrol-push-") as tmp:
                pushed = unpack(payload, Path(tmp), max_bytes=max_bytes)
                model_id = pushed.model_id
                # The store activates only a package new to it, so a retained push delivered
                # again on reconnect never undoes a local rollback, and refuses a downgrade.
                installed = self.store.install(
                    pushed.manifest_path,
                    activate=pushed.activate_allowed,
                    only_if_manifest_says=True,
                )
            model_id = installed.model_id  # verified against the signature
            load_failure = self._load_in_recorder(model_id) if installed.activated else None
            # What is true now, not what was intended: the store's pointer and the grader.
            active = load_failure is None and self._in_use(model_id)
            state: ModelUpdateResult = (
                "already installed" if installed.already_installed else "installed"
            )
            self.recorder.note_model_update(model_id, state, load_failure, activated=active)
            result = {
                "model_id": model_id,
                "result": state,
                "active": active,
                "activate_on_arrival": installed.activate_on_arrival,
            }
            if load_failure is not None:
                result["reason"] = load_failure
                log.error("pushed model %s: %s", model_id, load_failure)
            log.info("pushed model %s: %s, active: %s", model_id, state, active)
        except (ModelPackageError, OSError) as exc:
            self.recorder.note_model_update(model_id, "refused", str(exc))
            result = {"model_id": model_id, "result": "refused", "reason": str(exc)}
            log.error("pushed model %s refused: %s", model_id or "?", exc)
        result |= {"vehicle_id": self.vehicle_id, "fleet": fleet}
        result = {"schema": schema_tag(MODEL_RESULT), **result}
        if problems := schema_errors("model-result", result):
            # Our own message, so a bug here; the office still gets it, with the log saying why.
            log.error("model result breaks its schema: %s", "; ".join(problems))
        self.last_result = result
        return result

    def _in_use(self, model_id: str) -> bool:
        grader = self.recorder.grader
        in_use = grader is not None and grader.model_id == model_id
        return in_use and self.store.active_id() == model_id

    def _load_in_recorder(self, model_id: str) -> str | None:
        """Switch the running recorder to the package just activated: None once it grades
        with it, else why not. The switch is synchronous (ActiveModel.reload, under its lock),
        so a poll of the recorder's status loop that got there first has finished too; either
        way the grader in place afterwards says what happened."""
        try:
            self.recorder.reload_model()
            why = self.recorder.model_error
        except ModelPackageError as exc:  # the store's pointer itself is unreadable
            why = str(exc)
        grader = self.recorder.grader
        loaded = grader.model_id if grader is not None else None
        if loaded == model_id:
            return None
        self._point_back_to(loaded, model_id)
        fallback = f"fell back to {loaded}" if loaded else "recording without a model"
        return (
            "activated but failed to load in the recorder: "
            f"{why or 'the recorder did not switch to it'}; {fallback}"
        )

    def _point_back_to(self, loaded: str | None, failed: str) -> None:
        """Make the store's pointer follow the recorder's fallback, so that a restart grades
        with the model in use now rather than retrying the one that failed."""
        if loaded is None or self.store.active_id() != failed:
            return
        try:
            self.store.activate(loaded)
            self.recorder.reload_model()  # back on the model in use: its refusal is over
        except ModelPackageError as exc:  # e.g. the fallback is the shipped default
            log.warning("store still points at %s: %s", failed, exc)


def start_for_recorder(recorder: Recorder) -> ModelUpdates | None:
    """The model-update client for a running recorder (edge.app starts it); None if MQTT is off."""
    cfg = recorder.config.mqtt
    if not cfg.enabled:
        return None
    return ModelUpdates(recorder, cfg).start()
