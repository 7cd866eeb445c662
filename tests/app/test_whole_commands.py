"""Whole commands driven through the application layer (reconcile/app), without the CLI or a subprocess:
an `Operation` in, events and a result out, questions asked through the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID

from reconcile.app.apply import run_apply
from reconcile.app.operation import Operation
from reconcile.app.plan import _plan_and_render
from reconcile.app.session import Note, Output, Sending, Sent, Session
from reconcile.apply import BatchAnswered
from reconcile.store.state import load_state


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "people.yaml": "leads:\n"
        "  - email: ada@example.com\n    attributes: {FirstName: Ada}\n"
        "  - email: alan@example.com\n    attributes: {FirstName: Alan}\n",
    })


class Recorder:
    """A front end that keeps every event and answers each question as told."""

    def __init__(self, emulator=None, answer: bool = True):
        self.events: list[object] = []
        self.questions: list[str] = []
        self.answer = answer
        environ = {} if emulator is None else {
            "MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
            "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}
        self.session = Session(environ=environ, on_event=self.events.append, confirm=self.ask)

    def ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def shown(self) -> str:
        return "\n".join(event.text for event in self.events if isinstance(event, Output))

    def of(self, kind) -> list:
        return [event for event in self.events if isinstance(event, kind)]


def test_plan_hands_its_text_to_the_session_and_says_whether_apply_has_work(workspace: Path) -> None:
    front = Recorder()
    result = _plan_and_render(front.session, Operation(api="soap"))
    assert result.has_changes and not result.has_drift
    assert "# email:ada@example.com will be created" in front.shown()
    assert "# email:alan@example.com will be created" in front.shown()
    assert "Plan: 2 to create, 0 to update" in front.shown()


def test_apply_asks_through_the_session_and_sends_nothing_when_declined(workspace: Path, emulator) -> None:
    front = Recorder(emulator, answer=False)
    result = run_apply(front.session, Operation())
    assert result.outcome == "cancelled"
    assert len(front.questions) == 1 and front.questions[0].startswith("Apply these changes to ")
    assert emulator.leads() == [] and not front.of(Sending)
    assert not (workspace / "reconcile.state.json").exists() or not load_state(
        workspace / "reconcile.state.json").leads


def test_apply_reports_sending_its_calls_and_the_outcome_as_events(workspace: Path, emulator) -> None:
    front = Recorder(emulator, answer=True)
    result = run_apply(front.session, Operation())
    assert result.outcome == "applied" and result.report is not None
    assert len(emulator.leads()) == 2
    assert set(load_state(workspace / "reconcile.state.json").leads) == {"email:ada@example.com",
                                                                      "email:alan@example.com"}
    kinds = [type(event) for event in front.events]
    assert kinds.index(Sending) < kinds.index(BatchAnswered) < kinds.index(Sent)
    assert "Apply complete: 2 created, 0 updated, 0 failed" in front.shown()

    again = Recorder(emulator, answer=True)
    assert run_apply(again.session, Operation()).outcome == "nothing"
    assert again.questions == [] and "Nothing to apply." in again.shown()


def test_apply_with_auto_approve_asks_nothing(workspace: Path, emulator) -> None:
    front = Recorder(emulator, answer=False)
    assert run_apply(front.session, Operation(auto_approve=True)).outcome == "applied"
    assert front.questions == [] and len(emulator.leads()) == 2


def test_the_embedded_emulator_says_where_it_runs_as_a_note(workspace: Path) -> None:
    front = Recorder(answer=True)
    assert run_apply(front.session, Operation(use_emulator=True, auto_approve=True)).outcome == "applied"
    assert any("built-in Marketo emulator" in note.text for note in front.of(Note))
