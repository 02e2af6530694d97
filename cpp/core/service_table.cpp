// ServiceTable construction and lookups.
#include "core/service_table.hpp"

#include <algorithm>
#include <bit>

namespace dplb::core {

ServiceTable::ServiceTable(std::vector<ServiceEntry> services, uint64_t generation)
    : services_(std::move(services)),
      index_(std::bit_ceil(std::max<size_t>(16, services_.size() * 4)), -1),
      mask_(index_.size() - 1),
      generation_(generation) {
    for (size_t i = 0; i < services_.size(); ++i) {
        const ServiceEntry& s = services_[i];
        uint64_t h = hash_service(s.vip, s.port, s.proto) & mask_;
        while (index_[h] != -1) h = (h + 1) & mask_;
        index_[h] = static_cast<int32_t>(i);
        if (std::find(vips_.begin(), vips_.end(), s.vip) == vips_.end()) vips_.push_back(s.vip);
    }
}

const ServiceEntry* ServiceTable::find(const IpAddress& vip, uint16_t port, uint8_t proto) const {
    for (uint64_t h = hash_service(vip, port, proto) & mask_;; h = (h + 1) & mask_) {
        int32_t i = index_[h];
        if (i < 0) return nullptr;
        const ServiceEntry& s = services_[static_cast<size_t>(i)];
        if (s.port == port && s.proto == proto && s.vip == vip) return &s;
    }
}

bool ServiceTable::is_vip(const IpAddress& a) const {
    return std::find(vips_.begin(), vips_.end(), a) != vips_.end();
}

}  // namespace dplb::core
