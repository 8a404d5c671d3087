import { readFile } from 'node:fs/promises'

export interface Snippet {
  /** Line of the opening fence, for messages. */
  line: number
  code: string
}

/** The README's ```ts blocks, in order: each must compile as a user would paste it. */
export async function readmeSnippets (path: string): Promise<Snippet[]> {
  const lines = (await readFile(path, 'utf8')).split('\n')
  const snippets: Snippet[] = []
  let open: Snippet | null = null
  for (const [i, line] of lines.entries()) {
    if (open === null) {
      if (line.trim() === '```ts') open = { line: i + 1, code: '' }
    } else if (line.trim() === '```') {
      snippets.push(open)
      open = null
    } else {
      open.code += `${line}\n`
    }
  }
  return snippets
}
