"""A sortable, filterable table over a list of records that stays fast with 10,000 rows (no widget per row; the
rows of a refresh can be prepared off the GUI thread).  Used by the users and batches pages, which are built after
the first paint."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView


@dataclass(frozen=True)
class Column:
    """One column of a `RecordTableModel`: how a record shows (text, tooltip, icon), sorts and is edited.

    `text` and `sort_key` may run on the async runner's thread (`prepare_rows`): keep them pure (the record in,
    a value out; no Qt objects).  `tip` and `icon` run on the GUI thread, for the rows on screen only."""

    title: str
    text: Callable[[Any], str]
    sort_key: Callable[[Any], Any] | None = None       # default: the text, case-folded
    tip: Callable[[Any], str] | None = None
    icon: Callable[[Any], QIcon | None] | None = None
    edit: Callable[[Any, str], Any] | None = None      # (record, typed text) -> the replacement record


Sort = tuple[int, Qt.SortOrder]


@dataclass(frozen=True)
class PreparedRows:
    """Records made ready for a `RecordTableModel` by `prepare_rows`: in display order, with their identities and,
    when prepared away from the GUI thread, every cell's text and the filter's text.  `show_rows` takes the lists
    over: show a PreparedRows once."""

    records: list[Any]
    keys: list[Hashable]                    # each record's identity, same order
    row_of: dict[Hashable, int]             # identity -> row (fewer entries than rows if identities repeat)
    key: Callable[[Any], Hashable]
    sort: Sort | None                       # the order they are in (None: as they came, or as shown before)
    texts: list[tuple[str, ...] | None] | None = None   # None: made by the model when a row is first shown
    haystacks: list[str] | None = None
    shown: Sequence[Hashable] | None = None  # the identities as shown when prepared, and compared with them:
    same_rows: bool = False                 # the same identities (each once), and
    same_order: bool = False                # in the same order


def _sort_key(col: Column) -> Callable[[Any], Any]:
    return col.sort_key or (lambda r: col.text(r).casefold())


def prepare_rows(columns: Sequence[Column], records: Sequence[Any], key: Callable[[Any], Hashable],
                 sort: Sort | None = None, shown: Sequence[Hashable] | None = None, *,
                 cells: bool = True) -> PreparedRows:
    """Everything about showing `records` that grows with their number, done where it is called — on the async
    runner's thread for a refresh of thousands of rows, so the GUI thread only swaps the result in
    (`RecordTableModel.show_rows`).  Pure: reads only its arguments.

    `shown`: the identities in the order the table shows them now (`RecordTableModel.shown_keys`).  When the
    rows are the same ones, they keep that order before sorting (the sort is stable), so equal rows never trade
    places between refreshes.  `sort`: the view's sort column and order.  `cells`: also compute every cell's
    text and the filter text (else the model does, lazily, for the rows it shows)."""
    keys = [key(r) for r in records]
    row_of = {k: i for i, k in enumerate(keys)}
    order: list[int] = list(range(len(keys)))
    same_rows = shown is not None and len(shown) == len(row_of) == len(keys) and row_of.keys() == set(shown)
    if shown is not None and same_rows:
        order = [row_of[k] for k in shown]
    texts = [tuple(c.text(r) for c in columns) for r in records] if cells else None
    if sort is not None and 0 <= sort[0] < len(columns):
        col = columns[sort[0]]
        if texts is not None and col.sort_key is None:
            values = [t[sort[0]].casefold() for t in texts]
        else:
            values = [_sort_key(col)(r) for r in records]
        order.sort(key=values.__getitem__, reverse=sort[1] == Qt.SortOrder.DescendingOrder)
    else:
        sort = None
    if order != list(range(len(keys))):
        records = [records[i] for i in order]
        keys = [keys[i] for i in order]
        row_of = {k: i for i, k in enumerate(keys)}
        texts = [texts[i] for i in order] if texts is not None else None
    return PreparedRows(list(records), keys, row_of, key, sort, cast("list[tuple[str, ...] | None]", texts),
                        ["\n".join(t).casefold() for t in texts] if texts is not None else None, shown, same_rows,
                        shown is not None and keys == list(shown))


class RecordTableModel(QAbstractTableModel):
    """A table over a list of records (dataclasses), one row each: never one widget per row, so it stays
    fast with 10,000 rows.  Sorting is done here with Python's sort (a view's sort click is forwarded by
    `RecordFilter`); the filter text matches any column.  A refresh of many rows is prepared away from the GUI
    thread (`prepare_rows`) and swapped in with `show_rows`."""

    edited = Signal(int)  # a row's record was replaced by an edit

    def __init__(self, columns: list[Column], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = columns
        self.records: list[Any] = []
        self._texts: list[tuple[str, ...] | None] = []
        self._haystack: list[str | None] = []
        self._key: Callable[[Any], Hashable] | None = None  # the identity `_keys` were made with
        self._keys: list[Hashable] = []    # replaced, never changed in place: `shown_keys` hands it out

    def _swap(self, rows: PreparedRows) -> None:
        n = len(rows.records)
        self.records = rows.records
        self._texts = rows.texts if rows.texts is not None else [None] * n
        self._haystack = cast("list[str | None]", rows.haystacks) if rows.haystacks is not None else [None] * n
        self._key, self._keys = rows.key, rows.keys

    def set_records(self, records: list[Any]) -> None:
        self.beginResetModel()
        self.records = list(records)
        self._texts = [None] * len(self.records)
        self._haystack = [None] * len(self.records)
        self._key, self._keys = None, []
        self.endResetModel()

    def replace(self, row: int, record: Any) -> None:
        self.records[row] = record
        self._texts[row] = self._haystack[row] = None
        self._key = None  # the identity may have changed with the edit
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))

    def shown_keys(self, key: Callable[[Any], Hashable]) -> list[Hashable]:
        """The identities of the rows in the order shown (for `prepare_rows`; do not change the list)."""
        if self._key is not key:
            self._key, self._keys = key, [key(r) for r in self.records]
        return self._keys

    def show_rows(self, rows: PreparedRows) -> None:
        """Show prepared rows.  The same rows in the same order: one dataChanged.  The same rows in another
        order: one layout change that moves the selection and current row with their records.  Otherwise (rows
        came or went) a reset.  The view keeps its scroll position in the first two cases."""
        old = self.shown_keys(rows.key)
        if rows.shown is old:  # nothing shown since they were prepared: the comparisons made then hold
            same_order, same_rows = rows.same_order, rows.same_rows
        else:
            same_order = rows.keys == old
            same_rows = len(rows.row_of) == len(rows.keys) == len(old) and rows.row_of.keys() == set(old)
        if same_order:
            self._swap(rows)
            if rows.records:
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows.records) - 1, len(self.columns) - 1))
            return
        if same_rows:
            self.layoutAboutToBeChanged.emit()
            persistent = self.persistentIndexList()
            moved = [self.index(rows.row_of[old[i.row()]], i.column()) for i in persistent]
            self._swap(rows)
            self.changePersistentIndexList(persistent, moved)
            self.layoutChanged.emit()
            return
        self.beginResetModel()
        self._swap(rows)
        self.endResetModel()

    def update_records(self, records: list[Any], key: Callable[[Any], Hashable],
                       sort: Sort | None = None) -> None:
        """`prepare_rows` and `show_rows` in one go on the GUI thread, each row's cells made when it is first
        shown: for a few hundred rows, or an occasional update of more.  A refresh of thousands of rows on a timer
        prepares them on the runner's thread instead (the Monitor page does)."""
        self.show_rows(prepare_rows(self.columns, records, key, sort, self.shown_keys(key), cells=False))

    def texts(self, row: int) -> tuple[str, ...]:
        """The row's cells as shown (prepared, or made now and kept)."""
        texts = self._texts[row]
        if texts is None:
            record = self.records[row]
            texts = self._texts[row] = tuple(c.text(record) for c in self.columns)
        return texts

    def haystack(self, row: int) -> str:
        """Every column's text, case-folded: what the filter box searches."""
        hay = self._haystack[row]
        if hay is None:
            hay = self._haystack[row] = "\n".join(self.texts(row)).casefold()
        return hay

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, Qt.ItemDataRole.AccessibleTextRole):
            return self.texts(index.row())[index.column()]
        col = self.columns[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole and col.tip is not None:
            return col.tip(self.records[index.row()]) or None
        if role == Qt.ItemDataRole.DecorationRole and col.icon is not None:
            return col.icon(self.records[index.row()])
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and self.columns[index.column()].edit is not None:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        edit = self.columns[index.column()].edit if index.isValid() else None
        if edit is None or role != Qt.ItemDataRole.EditRole:
            return False
        record = self.records[index.row()]
        if str(value).strip() == self.columns[index.column()].text(record):
            return False
        self.replace(index.row(), edit(record, str(value).strip()))
        self.edited.emit(index.row())
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        col = self.columns[column]
        if col.sort_key is not None:
            values = [col.sort_key(r) for r in self.records]
        else:
            values = [(t[column] if (t := self._texts[i]) is not None else col.text(r)).casefold()
                      for i, r in enumerate(self.records)]
        order_of = sorted(range(len(self.records)), key=values.__getitem__,
                          reverse=order == Qt.SortOrder.DescendingOrder)
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        new_row = {old_row: new for new, old_row in enumerate(order_of)}
        self.records = [self.records[i] for i in order_of]
        self._texts = [self._texts[i] for i in order_of]
        self._haystack = [self._haystack[i] for i in order_of]
        if self._key is not None:
            self._keys = [self._keys[i] for i in order_of]
        self.changePersistentIndexList(old, [self.index(new_row[i.row()], i.column()) for i in old])
        self.layoutChanged.emit()


class RecordFilter(QSortFilterProxyModel):
    """The filter box over a `RecordTableModel` (plus an optional predicate, e.g. "only problems").

    Matching uses the model's cached text per row and sorting is forwarded to the model: both stay fast with
    10,000 rows, where Qt's per-cell comparisons would call into Python hundreds of thousands of times."""

    def __init__(self, model: RecordTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(model)
        self._model = model
        self._needle = ""
        self._keep: Callable[[Any], bool] | None = None

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._needle = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_predicate(self, keep: Callable[[Any], bool] | None) -> None:
        self.beginFilterChange()
        self._keep = keep
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        # Called for every row after each change of the model: the common case (no filter) returns at once.
        if self._keep is None and not self._needle:
            return True
        model = self._model
        if self._keep is not None and not self._keep(model.records[source_row]):
            return False
        return not self._needle or self._needle in model.haystack(source_row)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sourceModel().sort(column, order)

    def record(self, index: QModelIndex) -> Any:
        """The record behind a view's index (None for none)."""
        if not index.isValid():
            return None
        return self._model.records[self.mapToSource(index).row()]


def record_table(model: RecordTableModel, name: str, widths: list[int] | None = None) -> tuple[QTableView, RecordFilter]:
    """A sortable, filterable table view over `model`, laid out for many rows (fixed row height, no per-row
    sizing)."""
    proxy = RecordFilter(model)
    view = QTableView()
    view.setModel(proxy)
    view.setAccessibleName(name)
    view.setSortingEnabled(True)
    view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # keep the model's order until the admin sorts
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setTabKeyNavigation(False)  # Tab leaves the table (a sane tab order); arrows move inside it
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    header = view.horizontalHeader()
    header.setStretchLastSection(True)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    for i, w in enumerate(widths or []):
        view.setColumnWidth(i, w)
    return view, proxy
