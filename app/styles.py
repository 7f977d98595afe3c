"""The page's styles (passed to ``launch(css=…)``; Gradio 6 takes CSS there, not in Blocks): cards coloured by
relevance, the folded weak hits, the facts panel, and a layout that fits a 390-px phone without sideways scrolling."""

CSS = """
.pq-card { border: 1px solid var(--border-color-primary); border-left-width: 4px; border-radius: 8px; padding: 10px 14px; margin: 10px 0; overflow-wrap: anywhere; }
.pq-card[data-level="strong"] { border-left-color: #16a34a; } .pq-card[data-level="possible"] { border-left-color: #d97706; }
.pq-card[data-level="weak"] { border-left-color: #9ca3af; }
.pq-card.pq-flash { box-shadow: 0 0 0 3px #f5b94280; }
.pq-cite { font-weight: 600; color: var(--body-text-color); margin-bottom: 6px; overflow-wrap: anywhere; }
.pq-n { color: #b45309; }
.pq-text, .pq-doc-body { white-space: pre-wrap; line-height: 1.75; overflow-wrap: anywhere; }
.pq-text mark, .pq-doc-body mark { background: #fde68a; color: inherit; padding: 0 1px; }
.pq-best { background: #e0f2fe; border-radius: 3px; }
.pq-units { margin-top: 6px; font-size: 0.92em; display: flex; gap: 0 1.5em; flex-wrap: wrap; }
.pq-meta, .pq-src, .pq-count, .pq-note { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 4px; overflow-wrap: anywhere; }
.pq-actions { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-top: 8px; }
.pq-open, .pq-copy, .pq-vote, .pq-dl { padding: 1px 10px; font-size: 0.85em; font-weight: normal; border: 1px solid var(--border-color-primary); border-radius: 6px;
  background: var(--button-secondary-background-fill); cursor: pointer; min-height: 28px; }
.pq-vote { padding: 1px 6px; } .pq-vote.pq-voted { background: #dbeafe; border-color: #2563eb; }
.pq-fb { display: inline-flex; gap: 4px; margin-left: auto; }
.pq-copied { color: #166534; font-size: 0.85em; }
.pq-summary { background: var(--background-fill-secondary); border-radius: 8px; padding: 8px 14px; border-left: 4px solid #16a34a; }
.pq-summary h3 { margin: 4px 0; } .pq-summary li { margin: 4px 0; line-height: 1.7; }
.pq-ref { margin-left: 2px; font-weight: 600; text-decoration: none; cursor: pointer; }
.pq-empty { padding: 18px; border: 1px dashed var(--border-color-primary); border-radius: 8px; }
.pq-warn { padding: 6px 10px; background: #fef3c7; border-radius: 6px; margin-bottom: 6px; overflow-wrap: anywhere; }
.pq-rel { padding: 0 6px; border-radius: 4px; font-weight: 600; }
.pq-rel-strong { background: #dcfce7; color: #166534; }
.pq-rel-possible { background: #fef3c7; color: #92400e; }
.pq-rel-weak { background: #f3f4f6; color: #4b5563; }
.pq-valid { padding: 0 4px; border-radius: 4px; }
.pq-valid-expired { background: #f3f4f6; color: #4b5563; } .pq-valid-current { background: #dcfce7; color: #166534; }
.pq-valid-none { color: #6b7280; } .pq-valid-future { background: #e0e7ff; color: #3730a3; }
.pq-more { margin-top: 10px; border-top: 1px dashed var(--border-color-primary); padding-top: 6px; }
.pq-more > summary { cursor: pointer; font-weight: 600; color: var(--body-text-color-subdued); padding: 6px 0; }
.pq-absent { padding: 10px; color: #4b5563; }
.pq-info { padding: 6px 10px; background: #eef2ff; color: #3730a3; border-radius: 6px; margin-bottom: 6px; font-size: 0.9em; }
.pq-facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 0.9em; margin: 6px 0 10px;
  padding: 8px 12px; background: var(--background-fill-secondary); border-radius: 8px; }
.pq-facts dt { color: var(--body-text-color-subdued); } .pq-facts dd { margin: 0; overflow-wrap: anywhere; }
.pq-doc-grid { display: grid; grid-template-columns: 220px minmax(0, 1fr); gap: 16px; }
.pq-outline { max-height: 75vh; overflow: auto; font-size: 0.9em; border-right: 1px solid var(--border-color-primary); }
.pq-outline > summary { font-weight: 600; cursor: pointer; margin: 0 0 6px; }
.pq-ol { display: block; padding: 2px 0; text-decoration: none; text-align: left; }
.pq-here { font-weight: 700; }
.pq-ol-1 { padding-left: 1em; } .pq-ol-2 { padding-left: 2em; } .pq-ol-3 { padding-left: 3em; }
.pq-doc-body { max-height: 75vh; overflow: auto; padding-right: 8px; }
.pq-target { display: block; background: #fef9c3; outline: 2px solid #f59e0b; border-radius: 4px; padding: 4px; }
.pq-compare { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(280px, 100%), 1fr)); gap: 12px; }
.pq-col h3 { font-size: 1em; margin: 4px 0; }
.pq-downloads { margin: 4px 0; } .pq-downloads li { display: inline; margin-right: 1em; }
#pq-ask { max-height: 52px; align-self: flex-start; }
#pq-question textarea { max-height: 9em; overflow-y: auto; }
@media (max-width: 700px) {
  .pq-doc-grid { grid-template-columns: minmax(0, 1fr); }
  .pq-outline { max-height: 40vh; border-right: none; border-bottom: 1px solid var(--border-color-primary); }
  .pq-doc-body { max-height: none; padding-right: 0; }
  .pq-facts { grid-template-columns: minmax(0, 1fr); } .pq-facts dt { margin-top: 4px; }
  .pq-fb { margin-left: 0; }
}
"""
