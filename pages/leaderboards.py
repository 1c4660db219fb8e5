"""Leaderboards: the top users and prompts of the day, the week and all time, and how they are ranked."""

import streamlit as st

from core.leaderboards import Subject, Window, rule_for
from dashboard import auth, leaderboards, widgets

st.title("Leaderboards")
actor = auth.current_actor()
subject, window = leaderboards.board_from_link()
left, right = st.columns(2)
subject = left.segmented_control(
    "Board",
    list(Subject),
    default=subject,
    key="leaderboards.subject",
    format_func=leaderboards.SUBJECT_NAMES.__getitem__,
    required=True,
)
window = right.segmented_control(
    "Window",
    list(Window),
    default=window,
    key="leaderboards.window",
    format_func=leaderboards.WINDOW_NAMES.__getitem__,
    required=True,
)
leaderboards.write_board_link(subject, window)
st.caption(rule_for(window))

board = leaderboards.leaderboard(subject, window)
if board is None or not board.rows:
    st.info("No ranking has been computed for this board yet; recompute it below.", icon=":material/info:")
else:
    st.caption(f"Computed {board.computed_at:%Y-%m-%d %H:%M:%S} UTC · {len(board.rows)} ranked")
    st.dataframe(leaderboards.board_frame(board), hide_index=True, key="leaderboards.table")

if leaderboards.may_refresh(actor):
    with st.form("leaderboards.refresh"):
        reason = st.text_input("Reason (optional, goes into the audit log)", key="leaderboards.reason", max_chars=1000)
        if st.form_submit_button("Recompute now"):
            with widgets.known_errors_shown():
                report = leaderboards.refresh(actor, reason)
                widgets.flash(f"Recomputed at {report.computed_at:%H:%M:%S} UTC.")
                st.rerun()
    widgets.show_flash()
else:
    st.caption("Operators recompute the leaderboards; `krowoc-admin leaderboards refresh` runs on a schedule.")
