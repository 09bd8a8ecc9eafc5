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
CONFIG_HASH = PREFIX + "config-hash"    # digest of the files the spec references
CONFIG_FILES = PREFIX + "config-files"  # JSON {path: digest} of those files (names what changed)
NETWORK_FROM = PREFIX + "network-from"  # networkMode service:X: the id of X's container it shares
VOLUMES_FROM = PREFIX + "volumes-from"  # volumesFrom service:X: JSON {X: container id}
BUILD_HASH = PREFIX + "build-hash"      # on images reconcile built: digest of the build context
NODE = "reconcile.node"                 # many hosts: the node whose agent created it (docs/MULTI-HOST.md)

ALL = (MANAGED, INSTANCE, SERVICE, KIND, REPLICA, SPEC_HASH, GENERATION)
