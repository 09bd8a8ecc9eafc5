"""The pure planner: (desired, observed, status, now) -> actions, per service.

No Docker, no SQL, no clock, no logging. Everything it needs comes in as arguments (one
service's as a ``PlanInput``); everything it decides comes out as data (``actions.Action``s,
the ``State`` to report and the ``Reason`` for it). Observed containers passed in are already
known to be owned by this store.

Ordering is expressed as gating, not as a sequence: a service whose dependencies do
not meet their conditions gets no Create/Start and reports ``Waiting``; the next pass
(woken by the dependency's events) lets it go. That keeps each pass a pure function of
the world and makes "after an engine restart, come back in dependency order" the same
code path as a first apply.

The package, by noun:
  ``vocab``   ``State`` (with its order of severity), ``Reason``, ``Problem``: the values callers act on;
  ``model``   ``PlanInput``, ``ServicePlan``, ``Plan``, ``DepInfo``, ``Unmet``;
  ``deps``    requirements, what dependents see, unmet conditions, the graph walks;
  ``drift``   why a container must be recreated, and the words for it;
  ``gates``   the service-level gates (suspended, unreadable reference, build, failed rollout)
              and the one restart gate (given up / back-off);
  ``replica`` one replica's ``Verdict``;
  ``service`` ``plan_service`` (gates, then the replicas' verdicts folded) and ``plan``.
It imports no engine, database, clock or logging module (``.importlinter``, ``test_layering``).
"""

from controller.planner.deps import dep_info, dependents, requirements, topological_order
from controller.planner.drift import diff_fields
from controller.planner.gates import Hold, restart_gate
from controller.planner.model import DepInfo, Plan, PlanInput, ServicePlan, Unmet
from controller.planner.service import NO_LOOKUPS, Lookups, plan, plan_service
from controller.planner.vocab import (BLOCKING_REASONS, BUILDING, COMPLETED, CRASHLOOP, ERROR, EXITED, FAILED, PAUSED,
                                      PENDING, R_ACTION_FAILED, R_BACKOFF_LIMIT, R_BAD_REFERENCE, R_CRASHLOOP,
                                      R_DEPENDENCY, R_GAVE_UP, R_IMAGE_MISSING, R_NAME_CONFLICT, R_PORT_IN_USE,
                                      R_SUSPENDED, RUNNING, STARTING, SUSPENDED, UPDATING, WAITING, Problem, Reason,
                                      State, worst)

__all__ = [
    "BLOCKING_REASONS", "BUILDING", "COMPLETED", "CRASHLOOP", "ERROR", "EXITED", "FAILED", "PAUSED", "PENDING",
    "R_ACTION_FAILED", "R_BACKOFF_LIMIT", "R_BAD_REFERENCE", "R_CRASHLOOP", "R_DEPENDENCY", "R_GAVE_UP",
    "R_IMAGE_MISSING", "R_NAME_CONFLICT", "R_PORT_IN_USE", "R_SUSPENDED", "RUNNING", "STARTING", "SUSPENDED",
    "UPDATING", "WAITING",
    "DepInfo", "Hold", "Plan", "PlanInput", "Problem", "Reason", "ServicePlan", "State", "Unmet",
    "Lookups", "NO_LOOKUPS", "dep_info", "dependents", "diff_fields", "plan", "plan_service", "requirements", "restart_gate",
    "topological_order", "worst",
]
