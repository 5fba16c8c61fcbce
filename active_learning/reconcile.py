"""Reconciliation: harvest what the webhooks missed, retract what Label Studio deleted.

Label Studio sends each webhook once and never retries one that found the backend down
(or answered with an error), so the event log alone cannot promise that every
annotation is harvested. The :class:`Reconciler` compares Label Studio's annotations
with the harvest log, project by project, and repairs the difference: versions not yet
harvested are harvested (the harvest log makes this exactly-once), and labels whose
annotation Label Studio no longer has (HTTP 404, checked one by one) are retracted.

**Projects the backend serves** are those Label Studio has shown to be connected to
*this* backend: a project that called its ``/setup`` or ``/predict`` (Label Studio calls
``/setup`` when the backend is connected, and names the project in both), or whose
annotations it harvested (webhooks go only to a project's own backends). They are kept in
the harvest log's ``known_projects``, so a backend that was down still knows them. Projects
connected to another backend on the same Label Studio are never touched: two backends
do not share labels.

**A project stays served only while it still lists this backend.** Every round asks Label
Studio for the project's ML backends and compares their URLs with the ones Label Studio
used to call this backend for that project (its ``Host`` on ``/setup`` and ``/predict``).
A project disconnected from the backend is forgotten: it is not reconciled any more, also
after a restart, until Label Studio calls ``/setup`` for it again. A deleted project is
reconciled once more (its labels are retracted), then forgotten. Projects noted before
URLs were recorded are kept until Label Studio calls the backend for them again. Behind a
proxy that rewrites ``Host``, the recorded URL is the proxy's upstream name: connect the
backend in Label Studio under the name it sees, or its projects are forgotten each round.

Cost per round, per known project: one request for its ML backends, one for its webhooks
(when the backend has basic auth), one per page of tasks, and one per task that has
annotations.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from active_learning.harvest import HARVESTED, Harvester
from active_learning.harvest_log import HarvestLog
from ml_backend.label_studio import LabelStudioClient, LabelStudioError

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one reconciliation round did.

    Attributes:
        projects: Projects examined.
        annotations: Annotations Label Studio listed in them.
        harvested: Versions harvested now (missed by the webhooks).
        retracted: Labels retracted because their annotation is gone.
        webhooks_authorised: Backend webhooks given the backend's basic auth.
        errors: Annotations that could not be harvested (id and reason); retried next round.
        forgotten: Projects no longer served (disconnected from this backend, or deleted).
    """

    projects: list[int] = field(default_factory=list)
    annotations: int = 0
    harvested: int = 0
    retracted: int = 0
    webhooks_authorised: int = 0
    errors: list[str] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)


def authorise_webhooks(
    client: LabelStudioClient,
    project_id: int,
    basic_auth: tuple[str, str] | None,
    ml_backends: list[dict] | None = None,
) -> int:
    """Give the webhooks Label Studio made for a project's ML backends the backend's basic auth.

    Label Studio creates a backend's webhook (``<backend URL>/webhook``) without the
    backend's credentials, so a backend that requires basic auth would answer every
    webhook with 401 and depend on reconciliation alone. Returns the webhooks changed.
    ``ml_backends``: the project's ML backends when already fetched.
    """
    if basic_auth is None:
        return 0
    header = "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
    listed = ml_backends if ml_backends is not None else client.list_ml_backends(project_id)
    backends = {b["url"].rstrip("/") + "/webhook" for b in listed}
    changed = 0
    for hook in client.list_webhooks(project_id):
        headers = dict(hook.get("headers") or {})
        if hook.get("url") in backends and headers.get("Authorization") != header:
            client.update_webhook(hook["id"], headers={**headers, "Authorization": header})
            changed += 1
    return changed


class Reconciler:
    """Brings the harvest log in line with Label Studio.

    Args:
        client: Label Studio client (its user must see every project and annotation).
        harvester: Harvests and retracts.
        harvests: The harvest log.
        webhook_auth: The backend's basic auth, added to its webhooks in every round.
    """

    def __init__(
        self,
        client: LabelStudioClient,
        harvester: Harvester,
        harvests: HarvestLog,
        webhook_auth: tuple[str, str] | None = None,
    ) -> None:
        self.client = client
        self.harvester = harvester
        self.harvests = harvests
        self.webhook_auth = webhook_auth

    def served_projects(self) -> list[int]:
        """Known projects (see the module docstring), in id order; :meth:`run` drops disconnected ones."""
        return self.harvests.known_projects()

    def run(self, progress: Callable[[], object] | None = None) -> ReconcileReport:
        """One reconciliation round over all served projects.

        Args:
            progress: Called before each project (the worker renews its heartbeat).

        Raises:
            LabelStudioError: Label Studio is unreachable or failing (the round stops; the
                next one starts over, nothing is half-done because every step is idempotent).
        """
        report = ReconcileReport()
        for project_id in self.served_projects():
            if progress is not None:
                progress()
            backends = self.client.list_ml_backends(project_id)
            if not self.harvests.lists_this_backend(project_id, backends):
                self._forget(project_id, report)
                continue
            report.webhooks_authorised += authorise_webhooks(self.client, project_id, self.webhook_auth, backends)
            self.reconcile_project(project_id, report)
        log.info(
            "reconciled %d projects: %d annotations, %d harvested, %d retracted, %d errors, %d forgotten",
            len(report.projects), report.annotations, report.harvested, report.retracted, len(report.errors),
            len(report.forgotten),
        )  # fmt: skip
        return report

    def _forget(self, project_id: int, report: ReconcileReport) -> None:
        try:
            self.client.get_project(project_id)
        except LabelStudioError as exc:
            if exc.status_code != 404:
                raise
            self.reconcile_project(project_id, report)  # deleted: retract its labels once
        log.warning(
            "project %d no longer lists this backend (called as %s) among its ML backends: no longer served",
            project_id, ", ".join(sorted(self.harvests.backend_urls(project_id))),
        )  # fmt: skip
        self.harvests.forget_project(project_id)
        report.forgotten.append(project_id)

    def reconcile_project(self, project_id: int, report: ReconcileReport) -> None:
        """Harvest the missed versions and retract the deleted annotations of one project."""
        report.projects.append(project_id)
        ours = self.harvests.current_versions(project_id)
        our_tasks = {r.task_id for r in self.harvests.records(project=project_id)}
        listed = self._annotations(project_id, our_tasks)
        report.annotations += len(listed)
        for annotation_id, updated_at in sorted(listed.items()):
            if ours.get(annotation_id) == updated_at or self.harvests.has(annotation_id, updated_at):
                continue
            try:
                outcome = self.harvester.harvest(annotation_id)
            except (ValueError, KeyError, TypeError) as exc:
                report.errors.append(f"annotation {annotation_id}: {exc}")
                continue
            report.harvested += outcome.status == HARVESTED
        for annotation_id in sorted(set(ours) - set(listed)):
            report.retracted += self.harvester.retract_if_gone(annotation_id)

    def _annotations(self, project_id: int, our_tasks: set[int]) -> dict[int, str]:
        """Annotation id -> ``updated_at`` of every annotation (skips included) in a project."""
        try:
            tasks = self.client.list_tasks(project_id)
        except LabelStudioError as exc:
            if exc.status_code != 404:
                raise
            return {}  # the project is gone: all its labels are checked for retraction
        listed: dict[int, str] = {}
        for task in tasks:
            count = int(task.get("total_annotations") or 0) + int(task.get("cancelled_annotations") or 0)
            if count == 0 and task["id"] not in our_tasks:
                continue
            try:
                full = self.client.get_task(task["id"])  # unlike /annotations/, this lists skips too
            except LabelStudioError as exc:
                if exc.status_code != 404:
                    raise
                continue
            for annotation in full.get("annotations") or []:
                listed[int(annotation["id"])] = str(annotation["updated_at"])
        return listed
