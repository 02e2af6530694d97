// A plain main() for the libFuzzer targets, linked without -fsanitize=fuzzer: runs the
// target once over every file of the directories (or files) it is given, so the seed
// corpus and the crashes found before are regression tests in the sanitizer ctest builds.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
    size_t runs = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg(argv[i]);
        if (std::filesystem::is_directory(arg)) {
            for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
                if (!entry.is_regular_file()) continue;
                run_file(entry.path());
                ++runs;
            }
        } else if (std::filesystem::is_regular_file(arg)) {
            run_file(arg);
            ++runs;
        } else {
            std::fprintf(stderr, "%s: no such file or directory\n", argv[i]);
            return 2;
        }
    }
    std::printf("%zu inputs run\n", runs);
    if (runs == 0) {
        std::fprintf(stderr, "no inputs: the corpus is empty\n");
        return 1;
    }
    return 0;
}
