#!/usr/bin/env bash
# `make cluster` (up) and `make cluster-down` (down): the whole platform on a local k3d cluster.
#
# up: checks the tools; creates (or starts) the k3d cluster of infra/k3d/k3d.yaml; installs the pinned releases of
# infra/k3d/versions.env (Knative Serving + Kourier + Eventing + eventing-kafka-broker's KafkaSource and KafkaSink,
# Strimzi, the spark-operator, kube-prometheus-stack) and waits for them; imports the images built by `make image`;
# creates the Secrets once with generated values; applies every manifest (infra/, eventing/knative/); waits until the
# data services, Kafka and the Knative Services are ready; prints the URLs and `kn` commands.
# Every step converges: a second run changes nothing that is already as wanted (Secrets are never rotated).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=infra/k3d/versions.env
source "$here/versions.env"
cluster=coelho
context=k3d-$cluster
engine=${CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}
venv_python=$root/.venv/bin/python

kube() { kubectl --context "$context" "$@"; }
step() { printf '\n==> %s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() {  # need TOOL HINT
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed. $2"
}

check_tools() {
  need k3d "Install k3d ${K3D_MIN_VERSION} or newer: https://k3d.io (e.g. curl -s https://raw.githubusercontent.com/k3d-io/k3d/main/install.sh | TAG=${K3D_MIN_VERSION} bash)."
  need kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/"
  need helm "Install Helm 3: https://helm.sh/docs/intro/install/"
  need docker "k3d runs the cluster's nodes in Docker: https://docs.docker.com/engine/install/"
  docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (is it running, and may this user use it?)"
  local have
  have=$(k3d version | sed -n 's/^k3d version \(v[0-9.]*\).*/\1/p')
  [ "$(printf '%s\n%s\n' "$K3D_MIN_VERSION" "$have" | sort -V | head -n1)" = "$K3D_MIN_VERSION" ] \
    || fail "k3d $have is older than $K3D_MIN_VERSION (config schema k3d.io/v1alpha5)"
  [ -x "$venv_python" ] || fail "run 'make install' first (the image tag and the manifest check come from the package)"
}

random_token() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

# ensure_secret NAMESPACE NAME KEY[=VALUE]...: create the Secret once. A KEY alone gets a random value; a VALUE may use
# {KEY} of an earlier key of the same Secret. An existing Secret is kept as it is (its values are in use).
ensure_secret() {
  local namespace=$1 name=$2 item key value other
  shift 2
  kube -n "$namespace" get secret "$name" >/dev/null 2>&1 && return 0
  local -A values=()
  local args=()
  for item in "$@"; do
    key=${item%%=*}
    if [[ $item == *=* ]]; then
      value=${item#*=}
      for other in "${!values[@]}"; do value=${value//\{$other\}/${values[$other]}}; done
    else
      value=$(random_token)
    fi
    values[$key]=$value
    args+=("--from-literal=$key=$value")
  done
  kube -n "$namespace" create secret generic "$name" "${args[@]}" >/dev/null
  echo "created Secret $namespace/$name" >&2
}

release() {  # release ORG/REPO TAG FILE: the URL of a release artefact on GitHub
  echo "https://github.com/$1/releases/download/$2/$3"
}

wait_crds() { kube wait --for=condition=Established crd --all --timeout=180s >/dev/null; }
wait_deployments() { kube -n "$1" wait --for=condition=Available deployment --all --timeout=600s >/dev/null; }

create_cluster() {
  step "k3d cluster $cluster (k3s from $here/k3d.yaml)"
  if k3d cluster get "$cluster" >/dev/null 2>&1; then
    k3d cluster start "$cluster" >/dev/null
  else
    k3d cluster create --config "$here/k3d.yaml"
  fi
  kube get nodes >/dev/null
}

install_knative() {
  step "Knative Serving $KNATIVE_SERVING + Kourier $KNATIVE_NET_KOURIER"
  kube apply -f "$(release knative/serving "$KNATIVE_SERVING" serving-crds.yaml)" >/dev/null
  wait_crds
  kube apply -f "$(release knative/serving "$KNATIVE_SERVING" serving-core.yaml)" >/dev/null
  kube apply -f "$(release knative-extensions/net-kourier "$KNATIVE_NET_KOURIER" kourier.yaml)" >/dev/null
  # Kourier on node port 31080 (k3d maps host 8081 to it); k3s' Traefik keeps ports 80/443 for the Ingresses.
  kube -n kourier-system patch service kourier --type merge -p '{"spec": {"type": "NodePort", "ports": [
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 31080},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443, "nodePort": 31443}]}}' >/dev/null

  step "Knative Eventing $KNATIVE_EVENTING + eventing-kafka-broker $KNATIVE_EVENTING_KAFKA (KafkaSource, KafkaSink)"
  kube apply -f "$(release knative/eventing "$KNATIVE_EVENTING" eventing-crds.yaml)" >/dev/null
  wait_crds
  kube apply -f "$(release knative/eventing "$KNATIVE_EVENTING" eventing-core.yaml)" >/dev/null
  local artefact
  for artefact in eventing-kafka-controller.yaml eventing-kafka-source.yaml eventing-kafka-sink.yaml; do
    kube apply -f "$(release knative-extensions/eventing-kafka-broker "$KNATIVE_EVENTING_KAFKA" "$artefact")" >/dev/null
  done
  wait_crds
  # Our configuration of both (the one the offline validator used): ingress class, domain, tag resolution, metrics.
  kube apply -f "$root/infra/knative/config/knative-config.yaml" >/dev/null
  wait_deployments knative-serving
  wait_deployments kourier-system
  wait_deployments knative-eventing
  kube apply -f "$(release knative-extensions/eventing-kafka-broker "$KNATIVE_EVENTING_KAFKA" \
    eventing-kafka-post-install.yaml)" >/dev/null
}

install_operators() {
  kube apply -f "$root/infra/knative/namespace.yaml" >/dev/null
  step "Strimzi $STRIMZI (watching namespace kafka)"
  helm upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator --version "$STRIMZI" \
    --kube-context "$context" --namespace kafka --wait --timeout 10m >/dev/null

  step "spark-operator $SPARK_OPERATOR (SparkApplications in namespace coelho)"
  helm repo add spark-operator https://kubeflow.github.io/spark-operator --force-update >/dev/null
  helm upgrade --install spark-operator spark-operator/spark-operator --version "$SPARK_OPERATOR" \
    --kube-context "$context" --namespace spark-operator --create-namespace \
    --set 'spark.jobNamespaces={coelho}' --wait --timeout 10m >/dev/null

  step "kube-prometheus-stack $KUBE_PROMETHEUS_STACK (Prometheus, Grafana)"
  kube create namespace monitoring --dry-run=client -o yaml | kube apply -f - >/dev/null
  ensure_secret monitoring grafana-admin admin-user=admin admin-password
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
  helm upgrade --install monitoring prometheus-community/kube-prometheus-stack --version "$KUBE_PROMETHEUS_STACK" \
    --kube-context "$context" --namespace monitoring -f "$here/monitoring-values.yaml" \
    --set grafana.admin.existingSecret=grafana-admin --wait --timeout 15m >/dev/null
  local artefact
  for artefact in eventing-kafka-controller-prometheus-operator.yaml eventing-kafka-source-prometheus-operator.yaml \
                  eventing-kafka-sink-prometheus-operator.yaml; do
    kube apply -f "$(release knative-extensions/eventing-kafka-broker "$KNATIVE_EVENTING_KAFKA" "$artefact")" >/dev/null
  done
}

import_images() {
  local image spark_image archive
  image=$("$venv_python" -c 'from coelho.deploy.knative import IMAGE; print(IMAGE)')
  spark_image=${image%:*}-spark:${image##*:}
  step "images $image and $spark_image into k3d"
  [ -n "$engine" ] || fail "neither podman nor docker is installed (make image)"
  mkdir -p "$root/.cache/image"
  for image in "$image" "$spark_image"; do
    "$engine" image inspect "$image" >/dev/null 2>&1 || fail "image $image is missing: run 'make image'"
    archive="$root/.cache/image/$(echo "$image" | tr '/:' '__').tar"
    "$engine" save -o "$archive" "$image"
    k3d image import --cluster "$cluster" "$archive" >/dev/null
    rm -f "$archive"
  done
}

create_secrets() {
  step "Secrets (generated once, never rotated)"
  ensure_secret coelho coelho-signing COELHO_SIGNING_KEY
  ensure_secret coelho coelho-valkey VALKEY_PASSWORD \
    'REDIS_URL=redis://:{VALKEY_PASSWORD}@valkey.coelho.svc.cluster.local:6379/0'
  ensure_secret coelho coelho-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  ensure_secret coelho coelho-postgres POSTGRES_USER=mlflow POSTGRES_PASSWORD \
    'MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:{POSTGRES_PASSWORD}@postgres.coelho.svc.cluster.local:5432/mlflow'
}

apply_platform() {
  step "data services: Kafka (Strimzi), Valkey, PostgreSQL, MinIO + buckets, MLflow"
  kube apply -f "$root/infra/knative/settings.yaml" -f "$root/infra/data/" >/dev/null
  local workload
  for workload in statefulset/valkey statefulset/postgres statefulset/minio; do  # one resource per call
    kube -n coelho rollout status "$workload" --timeout=600s >/dev/null
  done
  kube -n coelho wait --for=condition=complete job/create-buckets --timeout=600s >/dev/null
  kube -n kafka wait kafka/coelho --for=condition=Ready --timeout=900s >/dev/null
  kube -n kafka wait kafkatopic --all --for=condition=Ready --timeout=300s >/dev/null
  kube -n coelho rollout status deployment/mlflow --timeout=600s >/dev/null

  step "functions (Knative Services), eventing (KafkaSources, KafkaSinks), training (JobSink), UI, producers, Spark"
  kube apply -f "$root/infra/knative/services/" >/dev/null
  kube apply -f "$root/eventing/knative/" >/dev/null
  kube apply -f "$root/infra/knative/train-jobsink.yaml" -f "$root/infra/knative/ui.yaml" \
    -f "$root/infra/knative/producers.yaml" -f "$root/infra/spark/sparkapplication.yaml" >/dev/null
  kube apply -f "$root/infra/monitoring/" >/dev/null
  if [ -d "$root/infra/observability" ]; then  # dashboards and alert rules (issue 14)
    kube apply -R -f "$root/infra/observability/" >/dev/null
  fi
  kube -n coelho wait ksvc --all --for=condition=Ready --timeout=600s >/dev/null
  kube -n coelho wait kafkasource --all --for=condition=Ready --timeout=300s >/dev/null
  kube -n coelho rollout status deployment/ui --timeout=300s >/dev/null
}

print_summary() {
  cat <<EOF

COELHO RealTime runs on k3d cluster '$cluster' (kubectl context $context).

  UI          http://ui.127.0.0.1.sslip.io:8080
  MLflow      http://mlflow.127.0.0.1.sslip.io:8080
  Grafana     http://grafana.127.0.0.1.sslip.io:8080   (user admin, password: kubectl -n monitoring get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d)
  Functions   http://<name>.coelho.127.0.0.1.sslip.io:8081   (public: the predict functions; the others are cluster-local)

  curl -s -X POST http://tfd-predict.coelho.127.0.0.1.sslip.io:8081/ -H 'content-type: application/json' -d @eventing/samples/tfd.json
  (offline, sslip.io does not resolve: add -H 'Host: tfd-predict.coelho.127.0.0.1.sslip.io' and use http://127.0.0.1:8081/)

  kn service list -n coelho                       kn revision list -n coelho
  kn service describe tfd-learn -n coelho         kn source list -n coelho
  kn source kafka list -n coelho                  (with the kn-source-kafka plugin)
  kubectl -n coelho get kafkasources,kafkasinks,jobsinks,pingsources,sparkapplications

  make cluster-down deletes the cluster.
EOF
}

case "${1:-}" in
  up)
    check_tools
    (cd "$root" && "$root/.venv/bin/coelho" manifests check)
    create_cluster
    install_knative
    install_operators
    import_images
    create_secrets
    apply_platform
    print_summary
    ;;
  down)
    need k3d "Nothing to delete without k3d."
    k3d cluster delete "$cluster"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
