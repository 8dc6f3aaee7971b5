#!/bin/sh
# Creates the connector's namespace with its retention and registers the connector's search
# attributes on it. Idempotent: it sets the retention of a namespace that exists and skips the
# attributes already registered.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS: the Temporal frontend}"
: "${TEMPORAL_NAMESPACE:?TEMPORAL_NAMESPACE: the connector namespace}"
: "${NAMESPACE_RETENTION:?NAMESPACE_RETENTION: how long closed workflows are kept}"
: "${SEARCH_ATTRIBUTES:?SEARCH_ATTRIBUTES: Name=Type pairs, space-separated}"

# Runs a command until it succeeds, at most 30 times 2 s apart: the frontend answers before
# the cluster is healthy, and a new namespace reaches every frontend a few seconds later.
retry() {
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge 30 ]; then
      echo "gave up after $attempt attempts: $*" >&2
      return 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

retry temporal operator cluster health

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace update --namespace "$TEMPORAL_NAMESPACE" \
    --retention "$NAMESPACE_RETENTION"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
    --retention "$NAMESPACE_RETENTION"
fi

registered() {
  registered_attributes=$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE")
}
retry registered

for attribute in $SEARCH_ATTRIBUTES; do
  name=${attribute%%=*}
  type=${attribute#*=}
  if printf '%s\n' "$registered_attributes" | grep -qw "$name"; then
    echo "search attribute $name is registered"
  else
    retry temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" \
      --name "$name" --type "$type"
  fi
done
echo "namespace $TEMPORAL_NAMESPACE is ready"
