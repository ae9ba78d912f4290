import {makeListCommand} from '../../cli/rules-commands.js'

export default makeListCommand('shard')
