#!/bin/sh
# Stand-in for cdkbot/hostpath-provisioner (microk8s's hostpath-storage addon), which cannot be
# pulled here: the same contract with the same RBAC. Every claim of a class whose provisioner is
# microk8s.io/hostpath, once the scheduler has picked its node (WaitForFirstConsumer), gets a
# hostPath PersistentVolume in a directory of its own under $PV_DIR, bound to it.
set -eu

while true; do
    kubectl get storageclass -o jsonpath='{range .items[?(@.provisioner=="microk8s.io/hostpath")]}{.metadata.name} {.reclaimPolicy}{"\n"}{end}' \
        >/tmp/classes 2>/dev/null || true
    kubectl get pvc -A -o jsonpath='{range .items[?(@.status.phase=="Pending")]}{.metadata.namespace} {.metadata.name} {.metadata.uid} {.spec.storageClassName} {.spec.resources.requests.storage} {.metadata.annotations.volume\.kubernetes\.io/selected-node} {.spec.accessModes}{"\n"}{end}' \
        2>/dev/null | while read -r namespace name uid class size node modes; do
        reclaim=$(awk -v c="$class" '$1 == c {print $2}' /tmp/classes)
        [ -n "$reclaim" ] && [ -n "$modes" ] || continue
        dir="$PV_DIR/$namespace-$name-pvc-$uid"
        mkdir -p -m 0777 "$dir"
        kubectl apply -f - <<EOF && echo "provisioned pvc-$uid for $namespace/$name in $dir"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pvc-$uid
  annotations:
    pv.kubernetes.io/provisioned-by: microk8s.io/hostpath
spec:
  storageClassName: $class
  persistentVolumeReclaimPolicy: $reclaim
  accessModes: $modes
  capacity: {storage: $size}
  claimRef: {namespace: $namespace, name: $name, uid: $uid}
  hostPath: {path: $dir, type: DirectoryOrCreate}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [$node]}
EOF
    done
    sleep 2
done
