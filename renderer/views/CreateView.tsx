import { LandingImages } from "../components/LandingImages";
import { PromptForm } from "../components/PromptForm";
import { QueueList } from "../components/QueueList";

/** The artist's main view: the prompt and its latest job's images on the left, the queue it feeds on the right. */
export function CreateView() {
  return (
    <div className="create-view">
      <div className="create-main">
        <PromptForm />
        <LandingImages />
      </div>
      <QueueList />
    </div>
  );
}
