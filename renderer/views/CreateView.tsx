import { PromptForm } from "../components/PromptForm";
import { QueueList } from "../components/QueueList";

/** The artist's main view: the prompt on the left, the queue it feeds on the right. */
export function CreateView() {
  return (
    <div className="create-view">
      <PromptForm />
      <QueueList />
    </div>
  );
}
