"""The lab's control side: controllers, kubelet, pod launcher, the supervisor daemon, ingress."""
