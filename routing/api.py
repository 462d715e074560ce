"""REST API for routing. Intake arrives with the intake work; simulate is here."""

from typing import Any

from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.selectors import lead_simulate


class CanViewRules(permissions.BasePermission):
    """Simulate shows the whole routing matrix at work, so it is for those who may read the rules."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("routing.view_rule"))


class SimulateSerializer(serializers.Serializer):
    """Any lead fields, as intake takes them; they are standardized exactly as at intake."""

    lead = serializers.DictField(child=serializers.JSONField(), allow_empty=False)


class SimulateView(APIView):
    """POST a lead; get the decision and its receipt under the live coverage model. Nothing is saved."""

    permission_classes = [CanViewRules]

    def post(self, request: Request) -> Response:
        serializer = SimulateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evaluation = lead_simulate(raw=serializer.validated_data["lead"])
        decision = evaluation.decision
        return Response(
            {
                "outcome": evaluation.outcome,
                "rep": decision.receipt["winner"]["username"] if decision and decision.receipt.get("winner") else None,
                "queue_id": decision.queue_id if decision else None,
                "territory_id": decision.territory_id if decision else None,
                "rule_id": decision.rule_id if decision else None,
                "receipt": evaluation.receipt(),
            }
        )
