"""A node's side of secure aggregation: one SecAgg+ client per round, driven by the desk's stages."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from fedsante.common.errors import BadRequest, RunFailed
from fedsante.federation.messages import Task
from fedsante.federation.secure import from_wire, to_wire
from fedsante.privacy.secagg import SecAggClient, SecAggConfig

Update = Callable[[], np.ndarray]
Expected = Callable[[str, int, int], SecAggConfig]
"""The settings this node's algorithm expects for a vector of ``length`` values of a task kind, among n nodes."""
MAX_ROUNDS = 1000  # as many as a run may have (LogRegParams.rounds)
KEPT_ROUNDS = 2 * MAX_ROUNDS  # state of rounds that never finished is dropped after this many newer ones


class SecureRounds:
    """Holds each round's secrets at the node (they never leave it) and answers the four stages."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._clients: OrderedDict[tuple[str, int], SecAggClient] = OrderedDict()

    def _client(self, task: Task) -> SecAggClient:
        client = self._clients.get((task.run_id, task.round))
        if client is None:
            raise RunFailed(f"secure aggregation: no key exchange for run {task.run_id} round {task.round} at this "
                            "node (the node restarted or the stage came out of order)")
        return client

    def handle(self, task: Task, update: Update, expected_config: Expected) -> dict:
        """The payload answering ``task``: a key exchange, an unmasking, or the masked vector of an algorithm's
        stage (``update()`` computes the plain vector; ``expected_config`` says which settings it must be sent with)."""
        data = {k: from_wire(v) for k, v in task.payload.items()}
        if task.kind == "secagg_keys":  # fresh keys for every round of the run, advertised at once
            configs, rounds = data.get("secagg"), data.get("rounds")
            if (not isinstance(rounds, list) or not isinstance(configs, dict) or len(rounds) > MAX_ROUNDS + 1
                    or set(configs) != {str(r) for r in rounds}
                    or not all(isinstance(c, SecAggConfig) for c in configs.values())):
                raise BadRequest("secagg_keys task without valid secure-aggregation settings for each round")
            adverts = {}
            for number in rounds:
                client = SecAggClient(self.node_id, configs[str(number)])
                self._clients[(task.run_id, int(number))] = client
                adverts[str(number)] = to_wire(client.advertise_keys())
            while len(self._clients) > KEPT_ROUNDS:
                self._clients.popitem(last=False)
            return {"adverts": adverts}
        if task.kind == "secagg_shares":
            shares = {}
            for number, roster in data["rosters"].items():
                client = self._clients.get((task.run_id, int(number)))
                if client is None:
                    raise RunFailed(f"secure aggregation: no keys for run {task.run_id} round {number} at this node")
                shares[number] = to_wire(client.share_keys(roster))
            return {"shares": shares}
        client = self._client(task)
        if "forwarded" in data:  # a stage summed by secure aggregation
            vector = np.asarray(update(), dtype=np.float64)
            expected = expected_config(task.kind, client.config.n_clients, vector.size)
            if client.config != expected:
                raise RunFailed("secure aggregation: the round's settings differ from this node's "
                                f"({client.config} instead of {expected})")
            limit = np.asarray(client.config.clip)
            if np.any(np.abs(vector) > limit):
                raise RunFailed(f"secure aggregation: the {task.kind} vector exceeds the bounds of the field "
                                "encoding; lower the learning rate or the number of local steps")
            return {"masked": to_wire(client.masked_input(vector, data["forwarded"]))}
        if task.kind == "secagg_unmask":
            shares = client.unmask(data["request"])
            self._clients.pop((task.run_id, task.round), None)
            return {"unmask": to_wire(shares)}
        raise BadRequest(f"Task kind {task.kind!r} is not a secure-aggregation stage.")
