"""The duplicates page: groups of identical and near-identical images side by side, a keeper per group (the
rule's suggestion or the person's pick), and the copies moved into a folder outside the collection.

Nothing is deleted, as with `loupe duplicates --move-to`: the copies move with an undo file written beside
them, and the page shows the command that brings them back.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from loupe.api import Collection
from loupe.base.errors import LoupeError
from loupe.store.image_table import IndexNotFoundError
from loupe.tools.duplicates import (DEFAULT_KEEPER, KEEPER_CRITERIA, DuplicateGroup, DuplicateReport, Member,
                              parse_keeper_rule)
from loupe.ui.gallery import escape

GROUPS_PER_PAGE = 30  # a 100,000-photo library can have thousands of groups; a page draws this many
COLUMNS = 4  # thumbnails per row: a group with more members wraps


@dataclass
class Review:
    """A found report and the keepers picked in it, kept in the session so a rerun does not compare every
    image again and a pick survives paging; finding again starts a new review."""

    report: DuplicateReport
    number: int  # in the widget keys, so a new review's radios start at the rule's keepers
    keepers: dict[str, str] = field(default_factory=dict)  # the rule's keeper id -> the id of the member kept

    def group(self, group: DuplicateGroup) -> DuplicateGroup:
        return group.with_keeper(self.keepers.get(group.keeper.id, group.keeper.id))

    def chosen(self) -> DuplicateReport:
        """The report with the picked keepers: what the moves are made from."""
        return dataclasses.replace(self.report, groups=[self.group(group) for group in self.report.groups])


def duplicates_page(collection: Collection) -> None:
    st.title("Duplicates")
    if not _indexed(collection):
        st.info(f"Nothing indexed yet in {collection.settings.index_name}. Index a folder on the Collection page.")
        return
    find_controls(collection)
    show_last_move(collection)
    review = st.session_state.get("duplicate_review")
    if review is None:
        return
    report = review.report
    st.caption(f"{len(report.groups)} groups, {report.copies} copies in {report.rows} images · "
               f"{report.seconds:.1f} s · keeper: {', '.join(report.keep)}")
    if not report.groups:
        st.success("No duplicates: every image is the only one of its kind.")
        return
    for number, group in shown_groups(review):
        show_group(collection, review, number, group)
    move_controls(collection, review)


def find_controls(collection: Collection) -> None:
    """The keeper rule and the button; the report goes into the session, not into this run only."""
    criteria = st.multiselect("Keeper rule", KEEPER_CRITERIA, default=list(DEFAULT_KEEPER),
                              help="Most important first: the largest resolution, the earliest date, the largest "
                                   "file, the shortest path. A tie goes to the next criterion.")
    if not st.button("Find duplicates", type="primary"):
        return
    try:
        rule = parse_keeper_rule(",".join(criteria))
        with st.spinner("Comparing the images..."):
            report = collection.duplicates(keep=rule)
    except LoupeError as exc:
        st.error(str(exc))
        return
    previous = st.session_state.get("duplicate_review")
    st.session_state.duplicate_review = Review(report, number=previous.number + 1 if previous else 0)
    st.session_state.pop("duplicate_move", None)


def show_last_move(collection: Collection) -> None:
    """What the last move did and how to undo it, until the next search: the undo file is the way back."""
    moved = st.session_state.get("duplicate_move")
    if moved is None:
        return
    count, folder, undo = moved
    st.success(f"Moved {count} copies to {folder}. Undo file: {undo}")
    st.code(f"loupe --index {shlex.quote(collection.settings.index_name)} duplicates --undo "
            f"{shlex.quote(str(undo))}", language="bash")


def shown_groups(review: Review) -> list[tuple[int, DuplicateGroup]]:
    """The groups of the page chosen (a page picker only when there is more than one), numbered from 1."""
    groups = list(enumerate(review.report.groups, start=1))
    pages = math.ceil(len(groups) / GROUPS_PER_PAGE)
    if pages <= 1:
        return groups
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, key=f"dup-page-{review.number}")
    start = (int(page) - 1) * GROUPS_PER_PAGE
    st.caption(f"groups {start + 1} to {min(start + GROUPS_PER_PAGE, len(groups))} of {len(groups)}; the keepers "
               "picked on other pages are kept")
    return groups[start:start + GROUPS_PER_PAGE]


def show_group(collection: Collection, review: Review, number: int, group: DuplicateGroup) -> None:
    """The members in the rule's order, each marked keep or copy as the current pick makes them."""
    with st.container(border=True):
        st.markdown(f"**Group {number}** · {len(group.members)} images")
        pictures = st.container()  # filled after the radio, whose value says which one is kept
        ids = [member.id for member in group.members]
        labels = _labels(group.members)
        kept = review.keepers.get(group.keeper.id, group.keeper.id)
        choice = st.radio("Keep", ids, index=ids.index(kept), format_func=labels.__getitem__, horizontal=True,
                          key=f"dup-keep-{review.number}-{group.keeper.id}")
        review.keepers[group.keeper.id] = choice
        copies = {member.id: member for member in review.group(group).copies}
        with pictures:
            for start in range(0, len(group.members), COLUMNS):
                for column, member in zip(st.columns(COLUMNS), group.members[start:start + COLUMNS]):
                    with column:
                        show_member(collection, member, copies.get(member.id))


def show_member(collection: Collection, member: Member, as_copy: Member | None) -> None:
    """Thumbnail, name (the path on hover), pixels, date; for a copy, why it is one."""
    try:
        st.image(collection.thumbnail(member.id), width="stretch")
    except LoupeError:
        st.caption("no thumbnail")
    st.markdown(f"**{escape(member.file_name)}**", help=member.path)
    st.caption(f"{member.width}x{member.height} · {escape(member.date[:10] or 'no date')}")
    if as_copy is None:
        st.badge("keep", color="green")
    else:
        st.caption(f"copy: {escape(as_copy.why)}")


def move_controls(collection: Collection, review: Review) -> None:
    st.subheader("Move the copies")
    folder = st.text_input("Move copies to folder", placeholder="/home/me/loupe-copies",
                           help="A folder outside the collection. Nothing is deleted: the copies move there, keep "
                                "their folders, leave the index, and an undo file is written beside them.")
    left, right = st.columns(2)
    listing = left.button("List the moves")
    moving = right.button("Move copies")
    if not (listing or moving):
        return
    try:
        target = _folder(folder)
        moves, undo = collection.move_duplicates(review.chosen(), target, dry_run=listing)
    except LoupeError as exc:
        st.error(str(exc))
        return
    if not moves:
        st.info("No copy to move: every copy is gone already or lies outside the indexed folders.")
    elif listing:
        st.caption(f"{len(moves)} copies would move to {target}; nothing has moved yet")
        st.dataframe([{"from": source, "to": to} for source, to in moves], hide_index=True)
    else:
        st.session_state.duplicate_move = (len(moves), target, undo)
        del st.session_state.duplicate_review  # the copies left the index: a new search shows what is left
        st.rerun()


def _indexed(collection: Collection) -> bool:
    """Whether the table opens: there is nothing to compare before the first indexing run."""
    try:
        return collection.toolbox.table is not None
    except IndexNotFoundError:
        return False


def _folder(text: str) -> Path:
    """The destination as a full path: a relative one would land wherever the server was started."""
    if not text.strip():
        raise LoupeError("give the folder to move the copies to")
    folder = Path(text.strip()).expanduser()
    if not folder.is_absolute():
        raise LoupeError(f"{text.strip()}: give the folder's full path, e.g. /home/me/loupe-copies")
    return folder


def _labels(members: list[Member]) -> dict[str, str]:
    """Member id -> its file name, with its folder's name where two members share a file name."""
    names = [member.file_name for member in members]
    return {member.id: member.file_name if names.count(member.file_name) == 1
            else f"{Path(member.path).parent.name}/{member.file_name}" for member in members}
