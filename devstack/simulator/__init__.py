"""The traffic simulator: executions through the real router and breakers, into PostgreSQL and Prometheus."""

from devstack.simulator.channel import INCIDENTS_KEY, IncidentChannel, ListedIncident
from devstack.simulator.engine import TrafficSimulator
from devstack.simulator.incidents import Incident, Incidents

__all__ = ["INCIDENTS_KEY", "Incident", "IncidentChannel", "Incidents", "ListedIncident", "TrafficSimulator"]
