"""What a change of the open meeting redraws, panel by panel, in the order of ui.VIEW_NAMES."""

from __future__ import annotations

from app.panels import edit, listen, meetings, models, segments, speakers, timeline
from app.session import Session


def render_view(S: Session) -> tuple:
    """Values of the VIEW outputs (timeline, status, summary, selection, speaker lists, solo list, table)."""
    return (timeline.render(S) + meetings.render(S) + edit.render(S) + speakers.render(S) + listen.render(S)
            + segments.render(S))


def render_lists(S: Session) -> tuple:
    """Values of the LISTS outputs (the meeting list, the model list)."""
    return meetings.render_list(S) + models.render_list(S)
