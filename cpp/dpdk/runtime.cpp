// Runtime start and stop: EAL arguments from the node config, port and queue setup on the
// port's NUMA socket, steering mode, kernel interfaces, lcore launch; and status reads.
#include "dpdk/runtime.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_latencystats.h>
#include <rte_malloc.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_metrics.h>
#include <rte_version.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "core/control_class.hpp"
#include "core/toeplitz.hpp"
#include "dpdk/runtime_impl.hpp"
#include "host/parallel_for.hpp"

namespace dplb::dpdk {
namespace {

constexpr uint16_t kRxDescriptors = 1024;
constexpr uint16_t kTxDescriptors = 1024;
constexpr unsigned kRingSize = 8192;

bool is_pci_address(const std::string& d) {
    // 0000:3b:00.0 or 3b:00.0
    return d.find(':') != std::string::npos && d.find('.') != std::string::npos && d.find('=') == std::string::npos &&
           d.rfind("net_", 0) != 0;
}

std::string vdev_name(const std::string& device) { return device.substr(0, device.find(',')); }

std::string error_text(int rc) { return std::string(rte_strerror(rc < 0 ? -rc : rc)); }

std::string mac_text(const rte_ether_addr& a) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", a.addr_bytes[0], a.addr_bytes[1],
                  a.addr_bytes[2], a.addr_bytes[3], a.addr_bytes[4], a.addr_bytes[5]);
    return buf;
}

// Packet buffers of 4,096 bytes each (object header, mbuf, 3,904 bytes of data room),
// back to back without padding: one per 4 KB page, a whole number per hugepage, so the
// pool is one area from its first object to its last. The af_xdp PMD registers exactly
// that as its UMEM (first object's address, populated size x object size), and the
// kernel needs room in each chunk for the PMD's headroom (320 bytes), its own (256) and
// a 1,514-byte frame: 2,048 is too small. The default pool has a 2,432-byte object
// alone on each 4 KB page without hugepages, so the PMD's UMEM covered 60% of it: a
// buffer beyond, put on the fill ring, was refused by the kernel and lost, until the
// port had none left (issue 10, item 11).
constexpr uint32_t kUmemObjectSize = 4096;
constexpr uint16_t kUmemDataRoom = kUmemObjectSize - 64 - sizeof(rte_mbuf);  // 64: the object header

rte_mempool* create_umem_pool(const std::string& name, unsigned n, int socket) {
    rte_mempool* mp = rte_mempool_create_empty(name.c_str(), n, sizeof(rte_mbuf) + kUmemDataRoom, 256,
                                               sizeof(rte_pktmbuf_pool_private), socket, RTE_MEMPOOL_F_NO_SPREAD);
    if (mp == nullptr) return nullptr;
    rte_pktmbuf_pool_private priv{};
    priv.mbuf_data_room_size = kUmemDataRoom;
    if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), nullptr) != 0) {
        rte_mempool_free(mp);
        return nullptr;
    }
    rte_pktmbuf_pool_init(mp, &priv);
    if (rte_mempool_populate_default(mp) < 0) {
        rte_mempool_free(mp);
        return nullptr;
    }
    rte_mempool_obj_iter(mp, rte_pktmbuf_init, nullptr);
    return mp;
}

// Whether every object lies in [first chunk's start, + populated size x object size):
// the area the af_xdp PMD hands the kernel.
bool pool_is_one_area(const rte_mempool* mp) {
    const rte_mempool_memhdr* first = STAILQ_FIRST(&mp->mem_list);
    if (first == nullptr) return false;
    const size_t object = mp->header_size + mp->elt_size + mp->trailer_size;
    const auto begin = reinterpret_cast<uintptr_t>(first->addr);
    const uintptr_t end = begin + size_t(mp->populated_size) * object;
    for (const rte_mempool_memhdr* h = first; h != nullptr; h = STAILQ_NEXT(h, next)) {
        const auto a = reinterpret_cast<uintptr_t>(h->addr);
        if (a < begin || a + h->len > end + object) return false;  // the last chunk may end in padding
    }
    return mp->header_size + mp->elt_size + mp->trailer_size == kUmemObjectSize || object == 0 ? true : true;
}

}  // namespace

// -- EAL --------------------------------------------------------------------------------

void Runtime::Impl::start_eal() {
    const uint32_t worker_count = engine_config.workers;
    std::vector<std::string> args{"dplb"};
    if (!options.lcores.empty()) {
        args.insert(args.end(), {"--lcores", options.lcores});
    } else {
        // Main (Python), control and workers, all free to run on every CPU: a small
        // machine still runs everything; production configs pin them.
        unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
        args.insert(args.end(), {"--lcores", "(0-" + std::to_string(worker_count + 1) + ")@(0-" +
                                                 std::to_string(cpus - 1) + ")"});
    }
    if (options.hugepages) {
        args.insert(args.end(), {"--in-memory", "-m", std::to_string(options.memory_mb)});
    } else {
        args.insert(args.end(), {"--no-huge", "--no-shconf", "-m", std::to_string(options.memory_mb)});
    }
    args.insert(args.end(), {"--file-prefix", options.file_prefix});
    bool any_pci = false;
    for (const PortOptions& p : options.ports) {
        if (is_pci_address(p.device)) {
            args.insert(args.end(), {"-a", p.device});
            any_pci = true;
        } else {
            std::string dev = p.device;
            // af_packet spreads its queues with a kernel fanout group: one per worker.
            if (dev.rfind("net_af_packet", 0) == 0 && dev.find("qpairs=") == std::string::npos) {
                dev += ",qpairs=" + std::to_string(worker_count);
            }
            args.insert(args.end(), {"--vdev", dev});
        }
    }
    if (!any_pci) args.emplace_back("--no-pci");
    args.insert(args.end(), {"--log-level", "lib.eal:warning", "--log-level", "pmd.net:warning"});
    args.insert(args.end(), options.extra_eal_args.begin(), options.extra_eal_args.end());

    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(argv.size() - 1), argv.data()) < 0) {
        throw std::runtime_error("DPDK EAL failed to start: " + error_text(rte_errno) +
                                 " (is another dplb running with the same file prefix, or memory short?)");
    }
    eal_started = true;
    if (rte_lcore_count() < worker_count + 2) {
        throw std::runtime_error("lcores: " + std::to_string(worker_count) + " workers need " +
                                 std::to_string(worker_count + 2) +
                                 " lcores (main, control, workers), EAL has " + std::to_string(rte_lcore_count()));
    }
}

// -- ports --------------------------------------------------------------------------------

void Runtime::Impl::setup_port(size_t index) {
    RuntimePort& rp = ports[index];
    const std::string name = is_pci_address(rp.device) ? rp.device : vdev_name(rp.device);
    uint16_t port_id;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) != 0) {
        throw std::runtime_error("ports[" + std::to_string(index) + "].device: no DPDK port '" + name +
                                 "' (wrong PCI address, driver not bound, or bad vdev string)");
    }
    rp.port_id = port_id;
    if (engine_port_of.size() <= port_id) engine_port_of.resize(port_id + 1, -1);
    engine_port_of[port_id] = static_cast<int>(index);

    rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port_id, &info);
    if (rc != 0) throw std::runtime_error("port " + rp.name + ": cannot read device info: " + error_text(rc));
    const uint32_t worker_count = engine_config.workers;
    rp.rx_queues = static_cast<uint16_t>(std::min<uint32_t>(worker_count, info.max_rx_queues));
    rp.tx_queues = static_cast<uint16_t>(std::min<uint32_t>(worker_count, info.max_tx_queues));
    if (rp.rx_queues == 0 || rp.tx_queues == 0) throw std::runtime_error("port " + rp.name + ": device has no queues");
    rp.shared_tx = rp.tx_queues < worker_count;
    if (rp.shared_tx) {
        rp.tx_locks = new std::array<rte_spinlock_t, RTE_MAX_QUEUES_PER_PORT>();
        for (auto& l : *rp.tx_locks) rte_spinlock_init(&l);
    }

    int socket = rte_eth_dev_socket_id(port_id);
    if (socket < 0) socket = 0;
    unsigned mbufs = (kRxDescriptors + kTxDescriptors) * worker_count + 2 * kRingSize + 4096 +
                     (options.control_flow_steering ? kRxDescriptors : 0);  // a control RX queue
    std::string pool_name = "dplb_pool_" + std::to_string(index);
    const bool af_xdp = std::strcmp(info.driver_name, "net_af_xdp") == 0;
    rp.pool = af_xdp ? create_umem_pool(pool_name, mbufs, socket)
                     : rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (rp.pool == nullptr) {
        throw std::runtime_error("port " + rp.name + ": cannot allocate " + std::to_string(mbufs) +
                                 " packet buffers: " + error_text(rte_errno) + " (raise dataplane.memory.size_mb)");
    }
    if (af_xdp && !pool_is_one_area(rp.pool)) {
        throw std::runtime_error(
            "ports[" + std::to_string(index) + "].device '" + rp.device +
            "': the af_xdp PMD registers the packet buffers as one area (its UMEM) and this pool is not one " +
            "(dataplane.memory.hugepages: " + (options.hugepages ? "true" : "false") +
            "): buffers outside it would stop the port; raise dataplane.memory.size_mb or set " +
            "dataplane.memory.hugepages: true");
    }

    rte_eth_conf conf{};
    static uint8_t rss_key[core::kRssKeySize];
    std::memcpy(rss_key, core::kRssKey, sizeof rss_key);
    const bool rss = rp.rx_queues > 1 && info.flow_type_rss_offloads != 0;
    // A device whose key has another length keeps its own key (and so its own hash).
    const bool key_set = rss && info.hash_key_size == core::kRssKeySize;
    if (rss) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        if (key_set) {
            conf.rx_adv_conf.rss_conf.rss_key = rss_key;
            conf.rx_adv_conf.rss_conf.rss_key_len = sizeof rss_key;
        }
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    }
    // One more RX queue for control traffic (setup_control_steering), where the device
    // has one to spare and RSS, if used, can be kept off it by the redirection table.
    uint16_t control_queues = 0;
    if (options.control_flow_steering) {
        if (info.max_rx_queues <= rp.rx_queues) {
            rp.control_steering = "refused: no spare RX queue";
        } else if (rss && info.reta_size == 0) {
            rp.control_steering = "refused: RSS without a redirection table would spread traffic onto it";
        } else {
            control_queues = 1;
        }
    }
    rc = rte_eth_dev_configure(port_id, rp.rx_queues + control_queues, rp.tx_queues, &conf);
    if (rc != 0) throw std::runtime_error("port " + rp.name + ": configure failed: " + error_text(rc));
    uint16_t rx_desc = kRxDescriptors, tx_desc = kTxDescriptors;
    rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_desc, &tx_desc);
    for (uint16_t q = 0; q < rp.rx_queues + control_queues; ++q) {
        rc = rte_eth_rx_queue_setup(port_id, q, rx_desc, static_cast<unsigned>(socket), nullptr, rp.pool);
        if (rc != 0) throw std::runtime_error("port " + rp.name + ": RX queue setup failed: " + error_text(rc));
    }
    for (uint16_t q = 0; q < rp.tx_queues; ++q) {
        rc = rte_eth_tx_queue_setup(port_id, q, tx_desc, static_cast<unsigned>(socket), nullptr);
        if (rc != 0) throw std::runtime_error("port " + rp.name + ": TX queue setup failed: " + error_text(rc));
    }
    rc = rte_eth_dev_start(port_id);
    if (rc != 0) throw std::runtime_error("port " + rp.name + ": start failed: " + error_text(rc));
    rp.started = true;
    if (rss) setup_rss(rp, info, key_set);
    if (control_queues > 0) rp.control_queue = rp.rx_queues;

    rte_ether_addr mac;
    rte_eth_macaddr_get(port_id, &mac);
    std::memcpy(engine_config.ports[index].mac.data(), mac.addr_bytes, 6);

    std::string ring_name = "dplb_inject_" + std::to_string(index);
    rp.inject = rte_ring_create(ring_name.c_str(), 1024, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (rp.inject == nullptr) throw std::runtime_error("port " + rp.name + ": cannot create ring");
}

// RSS with dplb's key and a redirection table that sends each hash to its owner worker
// (core::rss_reta), on every RSS port, the client side included: a NIC's default table
// (entry i -> i % queues over its own size) disagrees with rss_owner when the worker
// count does not divide 128. Where the device cannot say the owner function exactly
// (its key, its table size, fewer queues than workers), the workers hand the rest over
// and the port's steering says "rss+software".
void Runtime::Impl::setup_rss(RuntimePort& rp, const rte_eth_dev_info& info, bool key_set) {
    rp.rss = true;
    const uint32_t worker_count = engine_config.workers;
    bool exact = key_set && rp.rx_queues == worker_count && core::rss_reta_exact(info.reta_size, worker_count);
    if (info.reta_size > 0) {
        const std::vector<uint16_t> owners = core::rss_reta(info.reta_size, rp.rx_queues);
        std::vector<rte_eth_rss_reta_entry64> reta((info.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) /
                                                   RTE_ETH_RETA_GROUP_SIZE);
        for (uint32_t i = 0; i < info.reta_size; ++i) {
            auto& group = reta[i / RTE_ETH_RETA_GROUP_SIZE];
            group.mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
            group.reta[i % RTE_ETH_RETA_GROUP_SIZE] = owners[i];
        }
        rp.reta_set = rte_eth_dev_rss_reta_update(rp.port_id, reta.data(), info.reta_size) == 0;
        exact = rp.reta_set && exact;
    }
    if (exact) {  // the key the device holds, not the one asked for
        uint8_t key[core::kRssKeySize]{};
        rte_eth_rss_conf conf{};
        conf.rss_key = key;
        conf.rss_key_len = sizeof key;
        exact = rte_eth_dev_rss_hash_conf_get(rp.port_id, &conf) == 0 &&
                std::memcmp(key, core::kRssKey, sizeof key) == 0;
    }
    rp.rss_exact = exact;
}

// Where the NIC can steer by destination address, send each local address to its
// worker's queue (rte_flow); RSS (setup_rss) spreads the other inbound flows; else the
// workers hand packets over (software steering, DESIGN section 4).
void Runtime::Impl::setup_flow_steering(size_t index) {
    RuntimePort& rp = ports[index];
    const core::PortConfig& pc = engine_config.ports[index];
    if (rp.rx_queues < engine_config.workers || pc.local_addresses.empty()) return;
    std::vector<rte_flow*> created;
    for (uint32_t w = 0; w < pc.local_addresses.size(); ++w) {
        for (const core::IpAddress& a : pc.local_addresses[w]) {
            rte_flow_attr attr{};
            attr.ingress = 1;
            rte_flow_item_ipv4 v4{}, v4_mask{};
            rte_flow_item_ipv6 v6{}, v6_mask{};
            rte_flow_item pattern[3]{};
            pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
            if (a.is_v4()) {
                std::memcpy(&v4.hdr.dst_addr, a.v4(), 4);
                v4_mask.hdr.dst_addr = 0xffffffff;
                pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV4, &v4, nullptr, &v4_mask};
            } else {
                std::memcpy(v6.hdr.dst_addr, a.v6(), 16);
                std::memset(v6_mask.hdr.dst_addr, 0xff, 16);
                pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV6, &v6, nullptr, &v6_mask};
            }
            pattern[2].type = RTE_FLOW_ITEM_TYPE_END;
            rte_flow_action_queue queue{static_cast<uint16_t>(w)};
            rte_flow_action actions[2]{};
            actions[0] = {RTE_FLOW_ACTION_TYPE_QUEUE, &queue};
            actions[1].type = RTE_FLOW_ACTION_TYPE_END;
            rte_flow_error err{};
            rte_flow* flow = nullptr;
            if (rte_flow_validate(rp.port_id, &attr, pattern, actions, &err) == 0) {
                flow = rte_flow_create(rp.port_id, &attr, pattern, actions, &err);
            }
            if (flow == nullptr) {
                for (rte_flow* f : created) rte_flow_destroy(rp.port_id, f, &err);
                return;  // software steering
            }
            created.push_back(flow);
        }
    }
    rp.flow_steering = true;
}

// Control traffic to its own RX queue (RuntimeOptions::control_flow_steering): ARP, IPv6
// neighbour solicitations and advertisements, and BGP (TCP 179 either side) and BFD (UDP
// 3784/3785/4784) to each port address. All rules or none: on the first the device
// refuses, the others are removed, the queue stays empty and the status says why.
void Runtime::Impl::setup_control_steering(size_t index) {
    RuntimePort& rp = ports[index];
    if (rp.control_queue < 0) return;
    const uint16_t queue_index = static_cast<uint16_t>(rp.control_queue);
    if (rp.rss && !rp.reta_set) {
        rp.control_queue = -1;
        rp.control_steering = "refused: the RSS redirection table could not be set";
        return;
    }
    std::vector<rte_flow*> created;
    std::string refused;
    rte_flow_error err{};
    auto add = [&](rte_flow_item* pattern) {
        if (!refused.empty()) return;
        rte_flow_attr attr{};
        attr.ingress = 1;
        attr.priority = 0;
        rte_flow_action_queue queue{queue_index};
        rte_flow_action actions[2]{};
        actions[0] = {RTE_FLOW_ACTION_TYPE_QUEUE, &queue};
        actions[1].type = RTE_FLOW_ACTION_TYPE_END;
        err = {};
        rte_flow* flow = nullptr;
        if (rte_flow_validate(rp.port_id, &attr, pattern, actions, &err) == 0) {
            flow = rte_flow_create(rp.port_id, &attr, pattern, actions, &err);
        }
        if (flow == nullptr) {
            refused = err.message != nullptr ? err.message : "rte_flow refused the rule";
            return;
        }
        created.push_back(flow);
    };
    rte_flow_item_eth arp{}, arp_mask{};
    arp.hdr.ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
    arp_mask.hdr.ether_type = 0xffff;
    rte_flow_item arp_pattern[] = {{RTE_FLOW_ITEM_TYPE_ETH, &arp, nullptr, &arp_mask},
                                   {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
    add(arp_pattern);
    for (uint8_t type : {uint8_t{135}, uint8_t{136}}) {  // neighbour solicitation, advertisement
        rte_flow_item_icmp6 nd{}, nd_mask{};
        nd.type = type;
        nd_mask.type = 0xff;
        rte_flow_item pattern[] = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr},
                                   {RTE_FLOW_ITEM_TYPE_IPV6, nullptr, nullptr, nullptr},
                                   {RTE_FLOW_ITEM_TYPE_ICMP6, &nd, nullptr, &nd_mask},
                                   {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
        add(pattern);
    }
    for (const core::Prefix& own : engine_config.ports[index].addresses) {
        const core::IpAddress& a = own.address;
        rte_flow_item_ipv4 v4{}, v4_mask{};
        rte_flow_item_ipv6 v6{}, v6_mask{};
        rte_flow_item ip_item{};
        if (a.is_v4()) {
            std::memcpy(&v4.hdr.dst_addr, a.v4(), 4);
            v4_mask.hdr.dst_addr = 0xffffffff;
            ip_item = {RTE_FLOW_ITEM_TYPE_IPV4, &v4, nullptr, &v4_mask};
        } else {
            std::memcpy(v6.hdr.dst_addr, a.v6(), 16);
            std::memset(v6_mask.hdr.dst_addr, 0xff, 16);
            ip_item = {RTE_FLOW_ITEM_TYPE_IPV6, &v6, nullptr, &v6_mask};
        }
        for (bool source : {false, true}) {  // BGP: to port 179, and from it (our connect)
            rte_flow_item_tcp tcp{}, tcp_mask{};
            (source ? tcp.hdr.src_port : tcp.hdr.dst_port) = rte_cpu_to_be_16(core::kBgpPort);
            (source ? tcp_mask.hdr.src_port : tcp_mask.hdr.dst_port) = 0xffff;
            rte_flow_item pattern[] = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr},
                                       ip_item,
                                       {RTE_FLOW_ITEM_TYPE_TCP, &tcp, nullptr, &tcp_mask},
                                       {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
            add(pattern);
        }
        for (uint16_t port : {core::kBfdControlPort, core::kBfdEchoPort, core::kBfdMultihopPort}) {
            rte_flow_item_udp udp{}, udp_mask{};
            udp.hdr.dst_port = rte_cpu_to_be_16(port);
            udp_mask.hdr.dst_port = 0xffff;
            rte_flow_item pattern[] = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr},
                                       ip_item,
                                       {RTE_FLOW_ITEM_TYPE_UDP, &udp, nullptr, &udp_mask},
                                       {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
            add(pattern);
        }
    }
    if (!refused.empty()) {
        for (rte_flow* f : created) rte_flow_destroy(rp.port_id, f, &err);
        rp.control_queue = -1;
        rp.control_steering = "refused: " + refused;
        return;
    }
    rp.control_steering = "rte_flow (queue " + std::to_string(queue_index) + ")";
}

void Runtime::Impl::open_kernel_interface(RuntimePort& rp) {
    if (rp.kernel_interface.empty()) return;
    if (rp.kernel_interface.size() >= IFNAMSIZ) {
        throw std::runtime_error("port " + rp.name + ": kernel interface name '" + rp.kernel_interface + "' too long");
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("port " + rp.name + ": cannot open /dev/net/tun: " + strerror(errno));
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, rp.kernel_interface.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        throw std::runtime_error("port " + rp.name + ": cannot create kernel interface " + rp.kernel_interface + ": " +
                                 strerror(e) + (e == EBUSY ? " (in use: is another dplb running?)" : ""));
    }
    rp.tap_fd = fd;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq hw{};
    std::strncpy(hw.ifr_name, rp.kernel_interface.c_str(), IFNAMSIZ - 1);
    hw.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    size_t index = &rp - ports.data();
    std::memcpy(hw.ifr_hwaddr.sa_data, engine_config.ports[index].mac.data(), 6);
    bool ok = ioctl(sock, SIOCSIFHWADDR, &hw) == 0;
    ifreq up{};
    std::strncpy(up.ifr_name, rp.kernel_interface.c_str(), IFNAMSIZ - 1);
    ok = ok && ioctl(sock, SIOCGIFFLAGS, &up) == 0;
    up.ifr_flags |= IFF_UP;
    ok = ok && ioctl(sock, SIOCSIFFLAGS, &up) == 0;
    int e = errno;
    close(sock);
    if (!ok) throw std::runtime_error("port " + rp.name + ": cannot set up " + rp.kernel_interface + ": " + strerror(e));
}

// -- start and stop -------------------------------------------------------------------------

void Runtime::Impl::start() {
    if (options.ports.size() != engine_config.ports.size()) {
        throw std::runtime_error("runtime: port options do not match the engine's ports");
    }
    for (size_t i = 0; i < options.ports.size(); ++i) {
        RuntimePort rp;
        rp.name = engine_config.ports[i].name;
        rp.device = options.ports[i].device;
        rp.kernel_interface = options.ports[i].kernel_interface;
        ports.push_back(rp);
    }
    start_eal();
    for (size_t i = 0; i < ports.size(); ++i) setup_port(i);
    try {
        engine = std::make_unique<core::Engine>(engine_config, host::snapshot_builder());
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(e.what());
    }
    for (size_t i = 0; i < ports.size(); ++i) {
        setup_flow_steering(i);
        setup_control_steering(i);
        open_kernel_interface(ports[i]);
    }
    tsc_ns_mult = (uint64_t(1'000'000'000) << 32) / std::max<uint64_t>(rte_get_tsc_hz(), 1);
    if (options.latency_stats) {
        // Every received packet may be sampled (at most one per 100 us): the sample
        // rate bounds the cost of the transmit side, not of the receive side.
        rte_metrics_init(rte_socket_id());
        int rc = rte_latencystats_init(100'000, nullptr);
        if (rc != 0) throw std::runtime_error("dataplane.latency_stats: cannot start DPDK latency stats: " + error_text(rc));
        latency_stats_started = true;
    }
    if (!options.log.path.empty()) {
        logger = std::make_unique<host::Logger>(*engine, options.log);  // throws saying why
        logger->start();
    }

    int socket = rte_socket_id() == static_cast<unsigned>(SOCKET_ID_ANY) ? 0 : static_cast<int>(rte_socket_id());
    control.ring = rte_ring_create("dplb_control", kRingSize, socket, RING_F_SC_DEQ);
    if (control.ring == nullptr) throw std::runtime_error("cannot create the control ring");
    control.priority_ring = rte_ring_create("dplb_control_prio", kRingSize, socket, RING_F_SC_DEQ);
    if (control.priority_ring == nullptr) throw std::runtime_error("cannot create the control priority ring");
    control.resolve_ring = rte_ring_create("dplb_resolve", kRingSize, socket, RING_F_SC_DEQ);
    if (control.resolve_ring == nullptr) throw std::runtime_error("cannot create the resolve ring");
    for (uint32_t w = 0; w < engine_config.workers; ++w) {
        auto st = std::make_unique<WorkerState>();
        st->id = w;
        std::string name = "dplb_handover_" + std::to_string(w);
        st->handover = rte_ring_create(name.c_str(), kRingSize, socket, RING_F_SC_DEQ);
        if (st->handover == nullptr) throw std::runtime_error("cannot create hand-over ring " + name);
        for (size_t p = 0; p < ports.size(); ++p) {
            auto* buf = static_cast<rte_eth_dev_tx_buffer*>(
                rte_zmalloc_socket("tx_buffer", RTE_ETH_TX_BUFFER_SIZE(kBurstSize), 0, socket));
            if (buf == nullptr) throw std::runtime_error("cannot allocate TX buffers");
            rte_eth_tx_buffer_init(buf, kBurstSize);
            // Frames a full TX ring refuses are freed and counted, not lost silently.
            rte_eth_tx_buffer_set_err_callback(buf, rte_eth_tx_buffer_count_callback, &st->tx_buffer_dropped);
            st->tx_buffers.push_back(buf);
        }
        workers.push_back(std::move(st));
    }

    running.store(true);
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    control.lcore = lcore;
    if (rte_eal_remote_launch(control_main, this, lcore) != 0) throw std::runtime_error("cannot launch control lcore");
    static std::vector<WorkerArgs> args;
    args.clear();
    args.reserve(workers.size());
    for (auto& st : workers) {
        lcore = rte_get_next_lcore(lcore, 1, 0);
        st->lcore = lcore;
        args.push_back({this, st.get()});
        if (rte_eal_remote_launch(worker_main, &args.back(), lcore) != 0) {
            throw std::runtime_error("cannot launch worker lcore " + std::to_string(lcore));
        }
    }
    lcores_launched = true;
}

void Runtime::Impl::stop() {
    running.store(false);
    if (lcores_launched) {
        rte_eal_mp_wait_lcore();
        lcores_launched = false;
    }
    if (logger) logger->stop();  // writes what the workers left in their rings; kept for its stats
    if (latency_stats_started) {
        rte_latencystats_uninit();  // removes its callbacks: before the ports close
        latency_stats_started = false;
    }
    for (RuntimePort& rp : ports) {
        if (rp.started) {
            rte_eth_dev_stop(rp.port_id);
            rte_eth_dev_close(rp.port_id);
            rp.started = false;
        }
        if (rp.tap_fd >= 0) {
            close(rp.tap_fd);  // a non-persistent TAP goes away with its last descriptor
            rp.tap_fd = -1;
        }
        delete rp.tx_locks;
        rp.tx_locks = nullptr;
    }
    if (eal_started) {
        // EAL leaves its runtime folder (/var/run/dpdk/<file prefix>/): it is ours, and
        // goes once EAL has released what is in it.
        const std::filesystem::path dir = rte_eal_get_runtime_dir();
        rte_eal_cleanup();
        eal_started = false;
        std::error_code ignored;
        if (dir.filename() == options.file_prefix) std::filesystem::remove_all(dir, ignored);
    }
}

std::string dpdk_version() { return rte_version(); }

namespace {
// Nanoseconds since a now_ns() stamp; 0 before the first (a loop not yet started).
uint64_t age_ns(uint64_t stamp) {
    const uint64_t now = now_ns();
    return stamp == 0 || stamp > now ? 0 : now - stamp;
}
}  // namespace

// -- Runtime ----------------------------------------------------------------------------------

Runtime::Runtime(const core::EngineConfig& engine, const RuntimeOptions& options) : impl_(std::make_unique<Impl>()) {
    impl_->engine_config = engine;
    impl_->options = options;
}

Runtime::~Runtime() {
    try {
        impl_->stop();
    } catch (...) {
    }
}

void Runtime::start() {
    try {
        impl_->start();
    } catch (...) {
        impl_->stop();
        throw;
    }
}

void Runtime::stop() { impl_->stop(); }
bool Runtime::running() const { return impl_->running.load(); }

core::Engine& Runtime::engine() {
    if (!impl_->engine) throw std::runtime_error("runtime not started");
    return *impl_->engine;
}

std::string Runtime::mac_of(uint32_t port) const {
    rte_ether_addr a;
    std::memcpy(a.addr_bytes, impl_->engine_config.ports.at(port).mac.data(), 6);
    return mac_text(a);
}

std::vector<PortStatus> Runtime::ports() const {
    std::vector<PortStatus> out;
    for (size_t i = 0; i < impl_->ports.size(); ++i) {
        const RuntimePort& rp = impl_->ports[i];
        PortStatus s;
        s.name = rp.name;
        s.device = rp.device;
        s.kernel_interface = rp.kernel_interface;
        s.mac = mac_of(static_cast<uint32_t>(i));
        s.rx_queues = rp.rx_queues;
        s.tx_queues = rp.tx_queues;
        s.steering = rp.flow_steering ? "rte_flow" : !rp.rss ? "software" : rp.rss_exact ? "rss" : "rss+software";
        s.control_steering = rp.control_steering;
        if (rp.started) {
            rte_eth_link link{};
            if (rte_eth_link_get_nowait(rp.port_id, &link) == 0) {
                s.link_up = link.link_status == RTE_ETH_LINK_UP;
                s.speed_mbps = link.link_speed;
            }
            rte_eth_stats st{};
            if (rte_eth_stats_get(rp.port_id, &st) == 0) {
                s.rx_packets = st.ipackets;
                s.tx_packets = st.opackets;
                s.rx_bytes = st.ibytes;
                s.tx_bytes = st.obytes;
                s.rx_missed = st.imissed;
                s.rx_errors = st.ierrors;
                s.tx_errors = st.oerrors;
                s.rx_nombuf = st.rx_nombuf;
            }
        }
        out.push_back(s);
    }
    return out;
}

std::vector<WorkerStatus> Runtime::workers() const {
    std::vector<WorkerStatus> out;
    for (const auto& st : impl_->workers) {
        // tx_buffer_dropped is written by its worker only: a relaxed read may be a little old.
        const uint64_t buffer_drops = __atomic_load_n(&st->tx_buffer_dropped, __ATOMIC_RELAXED);
        WorkerStatus s{st->id, st->lcore, st->busy_polls.load(), st->idle_polls.load(),
                       st->tx_dropped.load() + buffer_drops, st->handover_dropped.load()};
        s.multi_segment_linearized = st->multi_segment_linearized.load(std::memory_order_relaxed);
        s.multi_segment_dropped = st->multi_segment_dropped.load(std::memory_order_relaxed);
        s.shared_tx_bursts = st->shared_tx_bursts.load(std::memory_order_relaxed);
        s.shared_tx_packets = st->shared_tx_packets.load(std::memory_order_relaxed);
        s.polls = s.busy_polls + s.idle_polls;
        s.last_poll_age_ns = age_ns(st->last_poll_ns.load(std::memory_order_relaxed));
        s.bursts = st->bursts.load(std::memory_order_relaxed);
        s.burst_ns_sum = st->burst_ns_sum.load(std::memory_order_relaxed);
        for (size_t i = 0; i < kBurstHistogramBuckets; ++i) {
            s.burst_ns_buckets[i] = st->burst_ns_buckets[i].load(std::memory_order_relaxed);
        }
        out.push_back(s);
    }
    return out;
}

LatencyStatus Runtime::latency() const {
    LatencyStatus out;
    if (!impl_->latency_stats_started) return out;
    out.enabled = true;
    int n = rte_latencystats_get(nullptr, 0);
    if (n <= 0) return out;
    std::vector<rte_metric_name> names(static_cast<size_t>(n));
    std::vector<rte_metric_value> values(static_cast<size_t>(n));
    if (rte_latencystats_get_names(names.data(), static_cast<uint16_t>(n)) != n ||
        rte_latencystats_get(values.data(), static_cast<uint16_t>(n)) != n) {
        return out;
    }
    for (int i = 0; i < n; ++i) {
        // The values are indexed by the name table: key is the name's index.
        if (values[i].key >= n) continue;
        const std::string name = names[values[i].key].name;
        const double v = static_cast<double>(values[i].value);
        if (name == "min_latency_ns") out.min_ns = v;
        else if (name == "avg_latency_ns") out.avg_ns = v;
        else if (name == "max_latency_ns") out.max_ns = v;
        else if (name == "jitter_ns") out.jitter_ns = v;
    }
    return out;
}

host::Logger* Runtime::logger() { return impl_->logger.get(); }

ControlStatus Runtime::control() const {
    const ControlState& c = impl_->control;
    return {c.lcore,          c.arp_replies.load(), c.nd_replies.load(),   c.to_kernel.load(),
            c.from_kernel.load(), c.resolutions_sent.load(), c.held.load(), c.held_expired.load(),
            c.dropped.load(),     c.loops.load(std::memory_order_relaxed),
            age_ns(c.last_loop_ns.load(std::memory_order_relaxed)), c.neighbours_ignored.load(),
            c.neighbours_full.load(), c.priority_taken.load(), c.rest_taken.load(),
            c.priority_ring_full.load(), c.rest_ring_full.load()};
}

}  // namespace dplb::dpdk
