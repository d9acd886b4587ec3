"""The settings dialog: model, duplicate defaults, keeper rule order, exclusions, threads/GPU, locations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from photoembed.config import DEFAULT_KEEPER_CRITERIA, Settings
from photoembed.errors import KnownError
from photoembed.gui import theme
from photoembed.gui.controller import LibraryController

KEEPER_LABELS = {
    "camera_metadata": "Camera data (make/model, EXIF date, GPS)",
    "earliest": "Earliest capture, then the older file",
    "camera_format": "Straight from the camera (RAW/HEIC/JPEG over a re-save)",
    "unedited": "Unedited over edited",
    "resolution": "Higher resolution",
    "sharpness": "Sharper",
    "file_size": "Less compressed (same pixels, larger file)",
    "shorter_path": "Shorter path",
}


class SettingsDialog(QDialog):
    """Edits a copy of the settings; OK hands it to the controller, which validates and saves it.

    Signals:
        view_changed(): the appearance or the raw-scores choice (GUI-only preferences, in QSettings) changed.
    """

    view_changed = Signal()

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(680)
        self.controller = controller
        self._settings = dataclasses.replace(controller.settings)

        self.model = QComboBox(self)
        self.model.setEditable(True)
        self.model.setToolTip("The CLIP model (ARCH/TAG as open_clip names it). Changing it re-indexes.")
        self.model.addItem(self._settings.model, self._settings.model)
        if controller.library is not None:
            controller.read(lambda library: library.models.list(), self._models_listed)

        self.threshold = QDoubleSpinBox(self)
        self.threshold.setRange(0.5, 1.0)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(2)
        self.threshold.setValue(self._settings.similar_threshold)
        self.window_s = QSpinBox(self)
        self.window_s.setRange(0, 7 * 24 * 3600)
        self.window_s.setSuffix(" s")
        self.window_s.setSpecialValueText("no limit")
        self.window_s.setValue(int(self._settings.similar_time_window_s))

        self.keepers = QListWidget(self)
        self.keepers.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.keepers.setToolTip("Drag to reorder: the first rule that tells two photos apart decides")
        for key in [*self._settings.keeper_criteria] + [
            k for k in DEFAULT_KEEPER_CRITERIA if k not in self._settings.keeper_criteria
        ]:
            item = QListWidgetItem(KEEPER_LABELS.get(key, key))
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.keepers.addItem(item)
        self.keepers.setMinimumHeight(7 * self.keepers.fontMetrics().height() + 12)
        up = QPushButton("Up", self)
        up.clicked.connect(lambda: self._move(-1))
        down = QPushButton("Down", self)
        down.clicked.connect(lambda: self._move(1))
        reset = QPushButton("Default order", self)
        reset.clicked.connect(self._reset_keepers)
        order_buttons = QVBoxLayout()
        for button in (up, down, reset):
            order_buttons.addWidget(button)
        order_buttons.addStretch(1)
        keepers_row = QHBoxLayout()
        keepers_row.addWidget(self.keepers, 1)
        keepers_row.addLayout(order_buttons)

        self.excluded = QPlainTextEdit("\n".join(self._settings.excluded_patterns), self)
        self.excluded.setToolTip("Folder or file name patterns to skip, one per line (* and ? wildcards)")
        self.excluded.setMaximumHeight(110)
        self.hidden = QCheckBox("Index hidden files and folders (names starting with a dot)", self)
        self.hidden.setChecked(self._settings.include_hidden)

        self.threads = QSpinBox(self)
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic (leaves a core for the app)")
        self.threads.setValue(self._settings.threads)
        self.gpu = QCheckBox("Use the GPU when there is one (CUDA, Apple MPS)", self)
        self.gpu.setChecked(self._settings.use_gpu)
        self.idle = QSpinBox(self)
        self.idle.setRange(0, 24 * 60)
        self.idle.setSuffix(" min without use")
        self.idle.setSpecialValueText("never (keep it loaded)")
        self.idle.setToolTip("Free the image model's memory when no photo needed it for this long; it loads "
                             "again for the next new photo")
        self._idle_shown = round(self._settings.model_idle_s / 60)
        self.idle.setValue(self._idle_shown)

        model_box = QGroupBox("Model", self)
        model_form = QFormLayout(model_box)
        model_form.addRow("Embedding model", self.model)
        model_form.addRow("Threads", self.threads)
        model_form.addRow("", self.gpu)
        model_form.addRow("Unload the image model after", self.idle)

        dupes_box = QGroupBox("Duplicates", self)
        dupes_form = QFormLayout(dupes_box)
        dupes_form.addRow("Similar shots threshold", self.threshold)
        dupes_form.addRow("Taken within", self.window_s)
        dupes_form.addRow("Keeper rules, in order", keepers_row)

        scan_box = QGroupBox("Scanning", self)
        scan_form = QFormLayout(scan_box)
        scan_form.addRow("Skip", self.excluded)
        scan_form.addRow("", self.hidden)

        view_settings = QSettings()
        self.appearance = QComboBox(self)
        for key, label in theme.APPEARANCES:
            self.appearance.addItem(label, key)
        self.appearance.setCurrentIndex(max(0, self.appearance.findData(theme.appearance())))
        self.raw_scores = QCheckBox("Show raw similarity scores on search results", self)
        self.raw_scores.setToolTip("Cosine similarities, as the command line prints them; a bar shows how each "
                                   "result ranks either way")
        self.raw_scores.setChecked(view_settings.value(theme.RAW_SCORES_KEY, False) in (True, "true", 1, "1"))
        view_box = QGroupBox("Appearance", self)
        view_form = QFormLayout(view_box)
        view_form.addRow("Colours", self.appearance)
        view_form.addRow("", self.raw_scores)

        paths = controller.paths
        where_box = QGroupBox("Where the library lives", self)
        where_form = QFormLayout(where_box)
        for label, folder in (("Data", paths.data), ("Cache", paths.cache), ("Settings", paths.config)):
            where_form.addRow(label, self._folder_row(folder))

        self.error = QLabel(self)
        self.error.setStyleSheet(f"color: {theme.ACCENT_TRASH.name()}")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(model_box)
        layout.addWidget(dupes_box)
        layout.addWidget(scan_box)
        layout.addWidget(view_box)
        layout.addWidget(where_box)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _folder_row(self, folder: Path) -> QWidget:
        row = QWidget(self)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        label = QLabel(str(folder), row)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        button = QPushButton(theme.icon("folder"), "Open", row)
        button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))
        layout.addWidget(label, 1)
        layout.addWidget(button)
        return row

    def _models_listed(self, statuses: list[object]) -> None:
        current = self.model.currentText()
        self.model.clear()
        for status in statuses:
            name = str(getattr(status, "name", status))
            installed = bool(getattr(status, "installed", False))
            self.model.addItem(f"{name}{'' if installed else '  (not installed)'}", name)
            self.model.setItemData(self.model.count() - 1, str(getattr(status, "note", "")),
                                   Qt.ItemDataRole.ToolTipRole)
        found = self.model.findData(current)
        if found >= 0:
            self.model.setCurrentIndex(found)
        else:
            self.model.setEditText(current)

    def _move(self, step: int) -> None:
        row = self.keepers.currentRow()
        target = row + step
        if row < 0 or not 0 <= target < self.keepers.count():
            return
        item = self.keepers.takeItem(row)
        self.keepers.insertItem(target, item)
        self.keepers.setCurrentRow(target)

    def _reset_keepers(self) -> None:
        self.keepers.clear()
        for key in DEFAULT_KEEPER_CRITERIA:
            item = QListWidgetItem(KEEPER_LABELS.get(key, key))
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.keepers.addItem(item)

    def edited(self) -> Settings:
        """The settings as edited in the dialog."""
        data = self.model.currentData()
        typed = self.model.currentText()
        # A listed model carries its name as item data; a typed one is taken as written.
        chosen = data and self.model.itemText(self.model.currentIndex()) == typed
        model = str(data) if chosen else typed.split("  (")[0].strip()
        return dataclasses.replace(
            self._settings,
            model=model,
            similar_threshold=round(self.threshold.value(), 4),
            similar_time_window_s=float(self.window_s.value()),
            keeper_criteria=tuple(
                str(self.keepers.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.keepers.count())
            ),
            excluded_patterns=tuple(
                line.strip() for line in self.excluded.toPlainText().splitlines() if line.strip()
            ),
            include_hidden=self.hidden.isChecked(),
            threads=self.threads.value(),
            use_gpu=self.gpu.isChecked(),
            # Shown in whole minutes: a value set in seconds in settings.json stays as it was unless changed.
            model_idle_s=(
                self._settings.model_idle_s if self.idle.value() == self._idle_shown else self.idle.value() * 60.0
            ),
        )

    def accept(self) -> None:
        settings = self.edited()
        try:
            settings.validate()
        except KnownError as exc:  # out of range: say so and keep the dialog open
            self.error.setText(str(exc))
            return
        view_settings = QSettings()
        view_settings.setValue(theme.APPEARANCE_KEY, self.appearance.currentData())
        view_settings.setValue(theme.RAW_SCORES_KEY, self.raw_scores.isChecked())
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app)
        self.view_changed.emit()
        self.controller.save_settings(settings)
        super().accept()
