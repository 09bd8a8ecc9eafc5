"""The labels the controller puts on what it creates. Ownership is decided by them:
a container, network or volume without ``io.reconcile.managed=true`` and this store's
``io.reconcile.instance`` is never touched."""

PREFIX = "io.reconcile."
MANAGED = PREFIX + "managed"            # "true"
INSTANCE = PREFIX + "instance"          # the store's instance id (two stores never collide)
SERVICE = PREFIX + "service"            # the resource name
KIND = PREFIX + "kind"                  # Service | Job
REPLICA = PREFIX + "replica"            # 1..N
SPEC_HASH = PREFIX + "spec-hash"        # container hash of the desired spec it was made from
GENERATION = PREFIX + "generation"      # the resource generation it was made from

ALL = (MANAGED, INSTANCE, SERVICE, KIND, REPLICA, SPEC_HASH, GENERATION)
