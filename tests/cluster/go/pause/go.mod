module backstage.k8s/tests/cluster/pause

go 1.24.0
