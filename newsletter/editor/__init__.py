"""What an editor does to issues and articles, on top of the publisher: draft from chosen
articles, add, move and remove a draft's articles, reschedule and unqueue, preview, list
what was collected. The CLI calls these today; the web desk and its API call the same."""
