"""The cluster: the store on etcd that every node shares (`etcd_store`, over the client in
`etcd` and the key layout in `layout`), the cluster view (`view`) and the peers' local
addresses for BGP (`peers`). See docs/cluster.md."""
