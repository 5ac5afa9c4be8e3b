# Sourced by the network benches: three network namespaces on one host, sender -> router
# -> receiver over two veth pairs, on private subnets with no default route. The router
# forwards; a bench puts its queue (tc) or its losses (nftables) there.
#
#   netns_up TAG NET   creates the namespaces "picam-${TAG}{snd,rtr,rcv}-$$" and the
#                      links ${TAG}s0 (sender) - ${TAG}r0 (router), ${TAG}r1 (router) -
#                      ${TAG}v0 (receiver), on 10.NET.1.0/24 and 10.NET.2.0/24, and sets
#                      NS_SND NS_RTR NS_RCV, NS_SND_IP NS_RCV_IP and NS_RTR_OUT (the
#                      router's link toward the receiver: where a queue goes).
#   netns_down         deletes them (safe to call twice, or before netns_up).
#
# TAG keeps two benches (or two helpers) from colliding: interface names are at most 15
# characters, so keep TAG short. Needs root and iproute2.

NS_SND="" NS_RTR="" NS_RCV=""

netns_up() {
  local tag="$1" net="$2"
  NS_SND="picam-${tag}snd-$$" NS_RTR="picam-${tag}rtr-$$" NS_RCV="picam-${tag}rcv-$$"
  NS_SND_IP="10.$net.1.1" NS_RCV_IP="10.$net.2.2" NS_RTR_OUT="${tag}r1"
  local n
  for n in "$NS_SND" "$NS_RTR" "$NS_RCV"; do
    ip netns add "$n"
    ip -n "$n" link set lo up
  done
  ip link add "${tag}s0" netns "$NS_SND" type veth peer name "${tag}r0" netns "$NS_RTR"
  ip link add "${tag}r1" netns "$NS_RTR" type veth peer name "${tag}v0" netns "$NS_RCV"
  ip -n "$NS_SND" addr add "10.$net.1.1/24" dev "${tag}s0"
  ip -n "$NS_RTR" addr add "10.$net.1.2/24" dev "${tag}r0"
  ip -n "$NS_RTR" addr add "10.$net.2.1/24" dev "${tag}r1"
  ip -n "$NS_RCV" addr add "10.$net.2.2/24" dev "${tag}v0"
  # A real link carries single packets: a GSO batch (the senders' UDP carrier joins up
  # to 64) is cut into them as it leaves the sender, not forwarded whole, or the
  # router's random loss would drop a whole frame's batch at once.
  ip -n "$NS_SND" link set "${tag}s0" gso_max_segs 1
  ip -n "$NS_RCV" link set "${tag}v0" gso_max_segs 1
  ip -n "$NS_SND" link set "${tag}s0" up
  ip -n "$NS_RTR" link set "${tag}r0" up
  ip -n "$NS_RTR" link set "${tag}r1" up
  ip -n "$NS_RCV" link set "${tag}v0" up
  ip netns exec "$NS_RTR" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$NS_SND" route add "10.$net.2.0/24" via "10.$net.1.2"
  ip -n "$NS_RCV" route add "10.$net.1.0/24" via "10.$net.2.1"
}

netns_down() {
  local n
  for n in "$NS_SND" "$NS_RTR" "$NS_RCV"; do
    [[ -z "$n" ]] || ip netns delete "$n" 2>/dev/null || true
  done
}
