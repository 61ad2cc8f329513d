// The embedded demo: a small Track 1 data set in the converted format, drawn by the program.
//
// Layout under the output folder:
//   questions.json                      the converted question list (track1.md §1)
//   gt.json                             the same items with `answer` filled with ground truth, for
//                                       `drivevqa eval`; the two unanswerable items are left out
//   samples/<CAM>/<scene>_<frame>.jpg   six 1600x900 camera images per frame
// Objects named by the questions (<cN,CAM,x,y>) are drawn at those pixel positions. The list ends
// broken items after the first frame (a missing camera image, an item whose images are all missing,
// an item without a question) so that per-item error handling is exercised by the demo itself.
//
// Ground truth follows what is drawn: option letters for the moving status (pedestrians and parked
// cars "Stopped.", other vehicles "Going ahead."), "Yes." / "No." from where objects stand, and
// DriveLM-style sentences naming the drawn objects' colours, kinds and cameras for open questions.
// The images show no corruption, so the corruption question's answer (A) is nominal; the ego
// vehicle's behaviour is taken as going straight, slowly in the city (A), fast on the highway (D).
#pragma once

#include <filesystem>

namespace drivevqa {

struct DemoSummary {
  int scenes = 0;
  int frames = 0;
  int images = 0;
  int questions = 0;      // items in questions.json, broken ones included
  int broken_items = 0;       // planted problems
  int unanswerable_items = 0;  // of those, items that must get an error answer
  int ground_truth_items = 0;  // items in gt.json: questions - unanswerable_items
  std::filesystem::path questions_file;
  std::filesystem::path ground_truth_file;
};

// kDemo: the demo above. kBenchmark: the same four frames with 20 questions each and no broken
// items, a Track-1-shaped workload for bench/throughput.sh.
enum class DemoVariant { kDemo, kBenchmark };

// Same output for every call (fixed content, deterministic drawing and encoding).
DemoSummary write_demo_dataset(const std::filesystem::path& dir, DemoVariant variant = DemoVariant::kDemo);

}  // namespace drivevqa
