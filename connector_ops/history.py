"""A workflow's story read from its Temporal history: the steps that happened, in time order.

Only what an operator needs is taken out of the payloads: step names, outcomes, error types,
payment ids, amounts and statuses. Inputs and results are never printed whole, because they
carry customer data (emails in order snapshots, mandate tokens in billing events).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from domain.money import Money

_LOCAL_ACTIVITY_MARKER = "core_local_activity"
# The encoding codec/payload_codec.py marks an encrypted payload with.
_ENCRYPTED = b"binary/encrypted"
_MESSAGE_LIMIT = 160
_CLOSING_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued as new",
}


@dataclass(frozen=True, kw_only=True)
class Step:
    at: datetime
    kind: str
    """workflow, signal, activity, local activity, timer, workflow task, pending activity,
    pending workflow task"""
    name: str
    outcome: str
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True, kw_only=True)
class SeenPayment:
    """A Mollie payment as an activity last saw it."""

    payment_id: str
    status: str
    amount: str


@dataclass(frozen=True, kw_only=True)
class Signal:
    name: str
    at: datetime
    value: Any


@dataclass(kw_only=True)
class HistoryReading:
    workflow_type: str = ""
    steps: list[Step] = field(default_factory=list)
    payments: dict[str, SeenPayment] = field(default_factory=dict)
    cleeng_payment_ids: list[str] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    start_input: Any = None
    result: Any = None
    failure: str | None = None
    failure_type: str | None = None
    first_task_completed: int | None = None
    last_task_completed: int | None = None
    failed_step_task: int | None = None
    """The workflow task that scheduled the last step that failed (where a retry resets to)."""


def failure_text(failure: Failure) -> tuple[str | None, str]:
    """(error type, message) of a failure, its root cause's type when the outer one has none
    (an ActivityError wraps the activity's ApplicationError)."""
    error_type: str | None = None
    node: Failure | None = failure
    while node is not None:
        if node.HasField("application_failure_info") and node.application_failure_info.type:
            error_type = node.application_failure_info.type
            message = node.message
            break
        if node.HasField("timeout_failure_info"):
            # The step's last failure before its time ran out, when there was one, says why.
            last_type, last_message = (
                failure_text(node.cause) if node.HasField("cause") else (None, "")
            )
            error_type = "Timeout"
            message = node.message or "timed out"
            if last_type:
                message = f"{message}; last failure {last_type}: {last_message}"
            break
        node = node.cause if node.HasField("cause") else None
    else:
        message = failure.message
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    return error_type, message


def _described_failure(failure: Failure) -> str:
    error_type, message = failure_text(failure)
    return f"{error_type}: {message}" if error_type else message


class UnreadableHistory(Exception):
    """The history holds payloads this process cannot decrypt (no key ring, or not the key
    they were written with). The message names the key id, never key material."""


async def decode_history(converter: DataConverter, history: WorkflowHistory) -> None:
    """Decode, in place, every payload and failure the reader looks at through the
    converter's payload codec (the connector's encryption, when PAYLOAD_ENCRYPTION_KEYS is
    set), so the reader sees the JSON the workflow wrote. Raises UnreadableHistory."""
    for event in history.events:
        for payloads in _payloads_of(event):
            await _decode_payloads(converter, payloads)
        for failure in _failures_of(event):
            await decode_failure(converter, failure)


async def decode_failure(converter: DataConverter, failure: Failure) -> None:
    """Decode a failure in place: its payloads through the codec, and the message the
    failure converter moved into its encoded attributes (then shown as "Encoded failure")
    put back, for it and each of its causes."""
    codec = converter.payload_codec
    try:
        if codec is not None:
            await codec.decode_failure(failure)
    except ValueError as error:  # codec.payload_codec.PayloadDecryptionError
        raise UnreadableHistory(str(error)) from None
    node: Failure | None = failure
    while node is not None:
        if node.HasField("encoded_attributes"):
            _refuse_encrypted(node.encoded_attributes)
            try:
                attributes = converter.payload_converter.from_payloads([node.encoded_attributes])
            except Exception:  # an encoding of another kind: leave the failure as it is
                attributes = [None]
            if isinstance(attributes[0], dict):
                if isinstance(attributes[0].get("message"), str):
                    node.message = attributes[0]["message"]
                if isinstance(attributes[0].get("stack_trace"), str):
                    node.stack_trace = attributes[0]["stack_trace"]
                node.ClearField("encoded_attributes")
        node = node.cause if node.HasField("cause") else None


async def _decode_payloads(converter: DataConverter, payloads: Payloads) -> None:
    codec = converter.payload_codec
    if codec is not None and payloads.payloads:
        try:
            await codec.decode_wrapper(payloads)
        except ValueError as error:  # codec.payload_codec.PayloadDecryptionError
            raise UnreadableHistory(str(error)) from None
    for payload in payloads.payloads:
        _refuse_encrypted(payload)


def _refuse_encrypted(payload: Payload) -> None:
    if payload.metadata.get("encoding") == _ENCRYPTED:
        key_id = payload.metadata.get("encryption-key-id", b"").decode(errors="replace")
        raise UnreadableHistory(
            f"its payloads are encrypted (key id {key_id!r}) and no key ring is configured"
        )


def _payloads_of(event: HistoryEvent) -> list[Payloads]:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return [event.workflow_execution_started_event_attributes.input]
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        return [event.workflow_execution_signaled_event_attributes.input]
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        return [event.activity_task_completed_event_attributes.result]
    if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
        return list(event.marker_recorded_event_attributes.details.values())
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return [event.workflow_execution_completed_event_attributes.result]
    return []


def _failures_of(event: HistoryEvent) -> list[Failure]:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        return [event.workflow_task_failed_event_attributes.failure]
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        return [event.activity_task_failed_event_attributes.failure]
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        return [event.activity_task_timed_out_event_attributes.failure]
    if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
        marker = event.marker_recorded_event_attributes
        return [marker.failure] if marker.HasField("failure") else []
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        return [event.workflow_execution_failed_event_attributes.failure]
    return []


class HistoryReader:
    """Reads a history whose payloads `decode_history` has decoded (`read_decoded` does both)."""

    def __init__(self, converter: DataConverter) -> None:
        self._converter = converter

    async def read_decoded(self, history: WorkflowHistory) -> HistoryReading:
        await decode_history(self._converter, history)
        return self.read(history)

    def decode(self, payloads: Payloads) -> Any:
        """The first payload as plain JSON values (dicts), or None when it is not JSON."""
        if not payloads.payloads:
            return None
        try:
            return self._converter.payload_converter.from_payloads([payloads.payloads[0]])[0]
        except Exception:  # a payload of another encoding: not ours to read
            return None

    def read(self, history: WorkflowHistory) -> HistoryReading:
        reading = HistoryReading()
        scheduled: dict[int, _Scheduled] = {}
        for event in history.events:
            self._read_event(event, reading, scheduled)
        return reading

    def _read_event(
        self, event: HistoryEvent, reading: HistoryReading, scheduled: dict[int, _Scheduled]
    ) -> None:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            reading.start_input = self.decode(attrs.input)
            reading.workflow_type = attrs.workflow_type.name
            reading.steps.append(
                Step(at=at, kind="workflow", name=attrs.workflow_type.name, outcome="started")
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal = event.workflow_execution_signaled_event_attributes
            value = self.decode(signal.input)
            reading.signals.append(Signal(name=signal.signal_name, at=at, value=value))
            reading.steps.append(
                Step(
                    at=at,
                    kind="signal",
                    name=signal.signal_name,
                    outcome="received",
                    detail=_signal_detail(value),
                )
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            if reading.first_task_completed is None:
                reading.first_task_completed = event.event_id
            reading.last_task_completed = event.event_id
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failed = event.workflow_task_failed_event_attributes
            # A reset shows in the new run as a workflow task failed on purpose, with the reason.
            reset = (
                failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
            )
            reading.steps.append(
                Step(
                    at=at,
                    kind="workflow" if reset else "workflow task",
                    name="",
                    outcome="reset here" if reset else "failed",
                    detail=_described_failure(failed.failure),
                )
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs_s = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = _Scheduled(
                name=attrs_s.activity_type.name, task=attrs_s.workflow_task_completed_event_id
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                scheduled[started.scheduled_event_id].attempt = started.attempt
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            step = scheduled.get(done.scheduled_event_id, _Scheduled())
            name = step.name
            detail = _after(
                step.attempt, self._note_result(name, self.decode(done.result), reading)
            )
            reading.steps.append(
                Step(at=at, kind="activity", name=name, outcome="completed", detail=detail)
            )
        elif kind in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        ):
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
                attrs_f = event.activity_task_failed_event_attributes
                scheduled_id, failure, outcome = (
                    attrs_f.scheduled_event_id,
                    attrs_f.failure,
                    "failed",
                )
            else:
                attrs_t = event.activity_task_timed_out_event_attributes
                scheduled_id, failure = attrs_t.scheduled_event_id, attrs_t.failure
                outcome = "timed out"
            step = scheduled.get(scheduled_id, _Scheduled())
            name = step.name
            reading.failed_step_task = step.task or reading.failed_step_task
            reading.steps.append(
                Step(
                    at=at,
                    kind="activity",
                    name=name,
                    outcome=outcome,
                    detail=_after(step.attempt, _described_failure(failure)),
                )
            )
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            self._read_marker(event, at, reading)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timer = event.timer_started_event_attributes
            seconds = timer.start_to_fire_timeout.ToTimedelta().total_seconds()
            reading.steps.append(
                Step(
                    at=at,
                    kind="timer",
                    name=timer.timer_id,
                    outcome="started",
                    detail=_duration(seconds),
                )
            )
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            fired = event.timer_fired_event_attributes
            reading.steps.append(Step(at=at, kind="timer", name=fired.timer_id, outcome="fired"))
        elif kind in _CLOSING_EVENTS:
            self._read_close(event, at, reading)

    def _read_marker(self, event: HistoryEvent, at: datetime, reading: HistoryReading) -> None:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != _LOCAL_ACTIVITY_MARKER:
            return
        data = self.decode(marker.details["data"]) if "data" in marker.details else None
        name = str(data.get("activity_type", "?")) if isinstance(data, dict) else "?"
        if marker.HasField("failure"):
            reading.failed_step_task = marker.workflow_task_completed_event_id
            reading.steps.append(
                Step(
                    at=at,
                    kind="local activity",
                    name=name,
                    outcome="failed",
                    detail=_described_failure(marker.failure),
                )
            )
            return
        result = self.decode(marker.details["result"]) if "result" in marker.details else None
        detail = self._note_result(name, result, reading)
        reading.steps.append(
            Step(at=at, kind="local activity", name=name, outcome="completed", detail=detail)
        )

    def _read_close(self, event: HistoryEvent, at: datetime, reading: HistoryReading) -> None:
        kind = event.event_type
        outcome = _CLOSING_EVENTS[kind]
        detail = None
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            reading.result = self.decode(event.workflow_execution_completed_event_attributes.result)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = event.workflow_execution_failed_event_attributes.failure
            reading.failure_type, reading.failure = failure_text(failure)
            detail = _described_failure(failure)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            detail = event.workflow_execution_terminated_event_attributes.reason or None
            reading.failure = f"terminated: {detail}" if detail else "terminated"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            reading.failure = "timed out"
        reading.steps.append(Step(at=at, kind="workflow", name="", outcome=outcome, detail=detail))

    def _note_result(self, activity: str, result: Any, reading: HistoryReading) -> str | None:
        """Keep the payment ids and amounts an activity's result shows; describe it briefly."""
        if isinstance(result, dict) and "order" in result:
            result = result["order"]  # a renewal's preparation: its order (or none: paid)
            if result is None:
                return "cycle already paid in Cleeng"
        if isinstance(result, dict) and isinstance(result.get("payment_id"), str):
            payment = _seen_payment(result)
            if payment is not None:
                reading.payments[payment.payment_id] = payment
                return f"{payment.payment_id} {payment.status} {payment.amount}"
        if isinstance(result, dict) and isinstance(result.get("order_id"), str):
            amount = _amount(result.get("amount"))
            return f"order {result['order_id']}" + (f" {amount}" if amount else "")
        if activity == "record_payment" and isinstance(result, str):
            reading.cleeng_payment_ids.append(result)
            return f"Cleeng payment {result}"
        return None


@dataclass(kw_only=True)
class _Scheduled:
    """An activity task: its name, the workflow task that scheduled it, its latest attempt."""

    name: str = "?"
    task: int = 0
    attempt: int = 1


def _after(attempt: int, detail: str | None) -> str | None:
    """Name the attempt when there were retries (their failures are not in the history)."""
    if attempt <= 1:
        return detail
    return f"attempt {attempt}: {detail}" if detail else f"attempt {attempt}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _amount(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("minor"), int):
        return str(Money(minor=value["minor"], currency=str(value.get("currency", "???"))))
    return None


def _seen_payment(result: dict[str, Any]) -> SeenPayment | None:
    amount = _amount(result.get("amount"))
    if amount is None:
        return None
    return SeenPayment(
        payment_id=result["payment_id"], status=str(result.get("status")), amount=amount
    )


def _signal_detail(value: Any) -> str | None:
    """What a signal asked for, without the customer data it carries."""
    if not isinstance(value, dict):
        return None
    if "kind" in value and "attempt_date" in value:
        return f"{value['kind']} attempt {value['attempt_date']}"
    if isinstance(value.get("payment_id"), str):
        return str(value["payment_id"])
    return None
